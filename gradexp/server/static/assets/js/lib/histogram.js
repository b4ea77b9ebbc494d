// @ts-check
// Histograms logged over steps (edges and counts), put on one value grid for a heatmap,
// and their percentiles.

import { numeric } from "./values.js";

/**
 * Spread a histogram (edges, counts) onto a fixed grid of `cells` equal cells over
 * [lo, hi], by overlap: each bin's count is shared among the cells it covers. Histograms
 * logged at different steps have different edges; this puts them on one axis. Mass
 * outside [lo, hi] is dropped; a zero-width bin goes whole to its cell (clamped).
 * @param {ArrayLike<number>} edges counts.length + 1 ascending edges
 * @param {ArrayLike<number>} counts
 * @param {number} lo
 * @param {number} hi
 * @param {number} cells
 * @param {Float64Array} [out] filled (reused) when given
 * @returns {Float64Array}
 */
export function resample(edges, counts, lo, hi, cells, out) {
  const res = out || new Float64Array(cells);
  res.fill(0);
  const width = (hi - lo) / cells;
  if (!(width > 0)) return res;
  for (let b = 0; b < counts.length; b++) {
    const c = counts[b];
    if (!c) continue;
    const a = edges[b];
    const z = edges[b + 1];
    if (!(z >= a)) continue;
    if (z === a) {
      const k = Math.min(cells - 1, Math.max(0, Math.floor((a - lo) / width)));
      res[k] += c;
      continue;
    }
    const k0 = Math.max(0, Math.floor((a - lo) / width));
    const k1 = Math.min(cells - 1, Math.floor((z - lo) / width));
    for (let k = k0; k <= k1; k++) {
      const c0 = lo + k * width;
      const overlap = Math.min(z, c0 + width) - Math.max(a, c0);
      if (overlap > 0) res[k] += (c * overlap) / (z - a);
    }
  }
  return res;
}

/**
 * Percentiles (q in [0, 1]) of a histogram, interpolating linearly inside bins; NaN for
 * each q when the histogram is empty.
 * @param {ArrayLike<number>} edges
 * @param {ArrayLike<number>} counts
 * @param {number[]} qs
 * @returns {number[]}
 */
export function percentiles(edges, counts, qs) {
  let total = 0;
  for (let b = 0; b < counts.length; b++) total += counts[b];
  if (!total) return qs.map(() => NaN);
  /** @type {number[]} */
  const out = [];
  for (const q of qs) {
    const target = q * total;
    let acc = 0;
    let value = edges[edges.length - 1];
    for (let b = 0; b < counts.length; b++) {
      const c = counts[b];
      if (acc + c >= target && c > 0) {
        const f = (target - acc) / c;
        value = edges[b] + f * (edges[b + 1] - edges[b]);
        break;
      }
      acc += c;
    }
    out.push(value);
  }
  return out;
}

/**
 * The value span of a set of histograms: from the lowest finite first edge to the highest
 * finite last edge; [-1, 1] when none has any, and a unit span around a single value.
 * @param {(unknown[] | null | undefined)[]} bins each histogram's edges, as the API sends them
 * @returns {{lo: number, hi: number}}
 */
export function edgeRange(bins) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const e of bins) {
    if (!e || !e.length) continue;
    const a = numeric(e[0]);
    const b = numeric(e[e.length - 1]);
    if (a !== null && Number.isFinite(a) && a < lo) lo = a;
    if (b !== null && Number.isFinite(b) && b > hi) hi = b;
  }
  if (!(hi >= lo)) {
    lo = -1;
    hi = 1;
  }
  if (hi === lo) {
    lo -= 0.5;
    hi += 0.5;
  }
  return { lo, hi };
}

/**
 * A heatmap column from resampled counts: top cell first (the highest values), each the
 * square root of its share of the column's fullest cell (so sparse tails still show),
 * and -1 for every cell of an empty column.
 * @param {ArrayLike<number>} cells counts per cell, lowest values first
 * @returns {Float64Array}
 */
export function densityColumn(cells) {
  const n = cells.length;
  let max = 0;
  for (let k = 0; k < n; k++) if (cells[k] > max) max = cells[k];
  const out = new Float64Array(n);
  for (let k = 0; k < n; k++) out[n - 1 - k] = max > 0 ? Math.sqrt(cells[k] / max) : -1;
  return out;
}

/**
 * The index of the step nearest to `s` (the first one on a tie); 0 for an empty list.
 * @param {ArrayLike<number>} steps
 * @param {number} s
 */
export function nearestIndex(steps, s) {
  let best = 0;
  for (let i = 1; i < steps.length; i++) if (Math.abs(steps[i] - s) < Math.abs(steps[best] - s)) best = i;
  return best;
}

/**
 * For each of `cols` equal pixel columns spanning the first to the last step, the index
 * of the histogram whose step is nearest the column's middle (steps ascending). Columns
 * are then as wide as the gaps between logged steps.
 * @param {ArrayLike<number>} steps
 * @param {number} cols
 * @returns {Int32Array}
 */
export function columnIndices(steps, cols) {
  const n = steps.length;
  const out = new Int32Array(cols);
  if (!n) return out;
  const s0 = steps[0];
  const span = steps[n - 1] - s0 || 1;
  let i = 0;
  for (let c = 0; c < cols; c++) {
    const s = n > 1 ? s0 + ((c + 0.5) / cols) * span : s0;
    while (i + 1 < n && Math.abs(steps[i + 1] - s) <= Math.abs(steps[i] - s)) i++;
    out[c] = i;
  }
  return out;
}
