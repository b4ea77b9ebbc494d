// @ts-check
// Axis ticks: "nice" steps for value and step axes, decades for log axes, human steps
// (seconds, minutes, hours, days) for time axes.

/**
 * A "nice" step (1, 2 or 5 times a power of ten) for about `target` ticks over `range`.
 * @param {number} range
 * @param {number} target
 * @returns {number}
 */
export function niceStep(range, target) {
  if (!(range > 0)) return 1;
  const raw = range / Math.max(1, target);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const r = raw / mag;
  return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
}

/**
 * Ticks covering [lo, hi], `step` apart, on multiples of `step` (at most 100).
 * @param {number} lo
 * @param {number} hi
 * @param {number} target about how many ticks
 * @param {boolean} [integer] steps of at least 1, whole numbers (an axis of steps)
 * @returns {{ticks: number[], step: number}}
 */
export function niceTicks(lo, hi, target, integer = false) {
  let step = niceStep(hi - lo, target);
  if (integer) step = Math.max(1, Math.round(step));
  /** @type {number[]} */
  const ticks = [];
  const first = Math.ceil(lo / step - 1e-9);
  for (let k = first; k * step <= hi + step * 1e-9 && ticks.length < 100; k++) ticks.push(k * step);
  return { ticks, step };
}

/**
 * Ticks for a log axis over [lo, hi] (lo > 0): decades, or 1-2-5 within a few decades.
 * @param {number} lo
 * @param {number} hi
 * @param {number} target
 * @returns {number[]}
 */
export function logTicks(lo, hi, target) {
  const d0 = Math.floor(Math.log10(lo));
  const d1 = Math.ceil(Math.log10(hi));
  const decades = d1 - d0;
  const mults = decades <= 2 ? [1, 2, 5] : [1];
  const every = Math.max(1, Math.ceil(decades / target));
  /** @type {number[]} */
  const ticks = [];
  for (let d = d0; d <= d1; d += mults.length === 1 ? every : 1) {
    for (const m of mults) {
      const v = m * Math.pow(10, d);
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) ticks.push(v);
    }
  }
  if (ticks.length < 2) return niceTicks(lo, hi, target).ticks.filter((v) => v > 0);
  return ticks;
}

/** Steps a time axis may take, in seconds: from a millisecond to a week. */
export const TIME_STEPS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];

/**
 * Ticks for a time axis (seconds): steps from a human list, aligned in local time when
 * `wall` (a wall-clock axis: ticks on the hour, at local midnight), else on multiples.
 * @param {number} lo
 * @param {number} hi
 * @param {number} target
 * @param {boolean} wall
 * @returns {{ticks: number[], step: number}}
 */
export function timeTicks(lo, hi, target, wall) {
  const raw = (hi - lo) / Math.max(1, target);
  let step = TIME_STEPS.find((s) => s >= raw);
  if (step === undefined) step = niceStep(hi - lo, target);
  const tz = wall ? -new Date(lo * 1000).getTimezoneOffset() * 60 : 0;
  /** @type {number[]} */
  const ticks = [];
  for (let t = Math.ceil((lo + tz) / step) * step - tz; t <= hi && ticks.length < 100; t += step) ticks.push(t);
  return { ticks, step };
}
