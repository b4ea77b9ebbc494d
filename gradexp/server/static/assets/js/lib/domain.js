// @ts-check
// What a chart's axes span, from the data's extent: a little padding so no point sits on
// the frame, and sensible spans for no data, one value, or a log axis.

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
