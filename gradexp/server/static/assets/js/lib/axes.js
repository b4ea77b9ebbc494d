// @ts-check
// A chart's axes: what they span (a little padding so no point sits on the frame, and
// sensible spans for no data, one value, or a log axis) and where their ticks go ("nice"
// steps for value and step axes, decades for log axes, human steps for time axes).

// --- ticks ---

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

// --- spans ---

/**
 * The x span to show for data from x0 to x1 (x0 > x1 when there is none).
 * @param {number} x0
 * @param {number} x1
 * @param {boolean} fromZero start at 0 when the data starts near it (an unzoomed step
 *   axis: downsampled buckets are named by their last step, so a run logged from step 0
 *   would otherwise start its axis at 4 or 17)
 * @returns {{x0: number, x1: number}}
 */
export function xDomain(x0, x1, fromZero) {
  if (!(x1 >= x0)) {
    x0 = 0;
    x1 = 1;
  }
  if (fromZero && x0 > 0 && x0 <= 0.02 * (x1 - x0)) x0 = 0;
  if (x1 === x0) {
    x0 -= 1;
    x1 += 1;
  }
  return { x0, x1 };
}

/**
 * The y span to show for values from y0 to y1 (y0 > y1 when there is none; on a log
 * axis, only positive values count): 5 % padding (of the decades, on a log axis), a
 * span around a single value, and 0..1 (0.1..10 on a log axis) for no data.
 * @param {number} y0
 * @param {number} y1
 * @param {boolean} logY
 * @returns {{y0: number, y1: number}}
 */
export function yDomain(y0, y1, logY) {
  if (!(y1 >= y0)) {
    y0 = logY ? 0.1 : 0;
    y1 = logY ? 10 : 1;
  }
  if (logY) {
    let l0 = Math.log10(y0);
    let l1 = Math.log10(y1);
    if (l1 - l0 < 1e-9) {
      l0 -= 0.5;
      l1 += 0.5;
    }
    const pad = (l1 - l0) * 0.05;
    return { y0: Math.pow(10, l0 - pad), y1: Math.pow(10, l1 + pad) };
  }
  if (y1 - y0 < 1e-12 * Math.max(1, Math.abs(y0))) {
    const d = Math.abs(y0) * 0.05 || 1;
    y0 -= d;
    y1 += d;
  } else {
    const pad = (y1 - y0) * 0.05;
    y0 -= pad;
    y1 += pad;
  }
  return { y0, y1 };
}

/**
 * A line as the chart draws it: its series (`n` points, raw `value`s and each bucket's
 * `min` and `max`), its x values and the values drawn (`ys`: the raw ones, or smoothed).
 * @typedef {{s: {n: number, value: ArrayLike<number>, min: ArrayLike<number>, max: ArrayLike<number>}, xs: ArrayLike<number>, ys: ArrayLike<number>}} Line
 */

/**
 * The lowest and highest value drawn between x0 and x1: each line's values, the raw ones
 * under a smoothed line, and the min/max of each bucket when `bands` are drawn. Values
 * that are not finite (or not positive, on a log axis) are not drawn. {y0: Infinity,
 * y1: -Infinity} when nothing is.
 * @param {Line[]} lines
 * @param {number} x0
 * @param {number} x1
 * @param {boolean} bands
 * @param {boolean} logY
 * @returns {{y0: number, y1: number}}
 */
export function yExtent(lines, x0, x1, bands, logY) {
  let y0 = Infinity;
  let y1 = -Infinity;
  /** @param {number} v */
  const see = (v) => {
    if (v - v !== 0 || (logY && v <= 0)) return;
    if (v < y0) y0 = v;
    if (v > y1) y1 = v;
  };
  for (const { s, xs, ys } of lines) {
    for (let i = 0; i < s.n; i++) {
      const x = xs[i];
      if (x < x0 || x > x1) continue;
      if (bands) {
        see(s.min[i]);
        see(s.max[i]);
      }
      see(ys[i]);
      if (ys !== s.value) see(s.value[i]); // the faded raw line under a smoothed one
    }
  }
  return { y0, y1 };
}
