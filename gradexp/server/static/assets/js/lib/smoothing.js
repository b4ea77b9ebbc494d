// @ts-check
// Smoothing of a chart's line.

/**
 * Debiased exponential moving average (as TensorBoard): non-finite values pass through
 * unchanged and leave the average as it was.
 * @param {ArrayLike<number>} values
 * @param {number} n how many of `values` to smooth
 * @param {number} beta the weight of the past, in [0, 1)
 * @param {Float64Array} [out] reused when long enough
 * @returns {Float64Array}
 */
export function emaSmooth(values, n, beta, out) {
  const res = out && out.length >= n ? out : new Float64Array(n);
  let acc = 0;
  let weight = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v - v !== 0) {
      res[i] = v;
      continue;
    }
    acc = beta * acc + (1 - beta) * v;
    weight = beta * weight + (1 - beta);
    res[i] = acc / weight;
  }
  return res;
}
