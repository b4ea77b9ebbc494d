// @ts-check
// One line of a chart: parallel typed arrays in step order, growable for live appends.
//
// Series come from the server already downsampled: per bucket a value (its last point)
// and the bucket's min and max. A live series grows one raw point at a time and is halved
// (`compact`) when it gets long, keeping every bucket's min and max, so a spike that was
// ever drawn stays visible. A smoothed line is the series' values through `emaSmooth`.

import { numeric } from "./values.js";

/**
 * A series as the history API sends it: parallel arrays, values possibly typed (NaN, ±inf).
 * @typedef {{step: number[], time: number[], value: unknown[], min: unknown[], max: unknown[]}} ApiSeries
 */

/**
 * The smaller of two numbers, ignoring a NaN (NaN only when both are).
 * @param {number} a
 * @param {number} b
 */
export function minIgnoringNaN(a, b) {
  if (a !== a) return b;
  if (b !== b) return a;
  return a < b ? a : b;
}

/**
 * The larger of two numbers, ignoring a NaN (NaN only when both are).
 * @param {number} a
 * @param {number} b
 */
export function maxIgnoringNaN(a, b) {
  if (a !== a) return b;
  if (b !== b) return a;
  return a > b ? a : b;
}

/**
 * The first index in `xs[0..n)` (ascending) whose value is >= x; n when there is none.
 * @param {ArrayLike<number>} xs
 * @param {number} n
 * @param {number} x
 */
export function lowerBound(xs, n, x) {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** One line: parallel typed arrays in step order, growable for live appends. */
export class Series {
  /**
   * @param {string} id
   * @param {string} label
   * @param {string} color a CSS colour
   * @param {number} [capacity] points before the first growth
   */
  constructor(id, label, color, capacity = 64) {
    this.id = id;
    this.label = label;
    this.color = color;
    this.n = 0;
    this.t0 = NaN; // the run's start time, for the relative-time axis
    /** @type {Series | null} the step_metric's series of the same run (define_metric), for the "metric" x axis */
    this.axis = null;
    this.version = 0; // bumped on every change (caches key on it)
    this.step = new Float64Array(0);
    this.time = new Float64Array(0);
    this.value = new Float64Array(0);
    this.min = new Float64Array(0);
    this.max = new Float64Array(0);
    this._alloc(capacity);
  }

  /** @param {number} capacity */
  _alloc(capacity) {
    /** @param {Float64Array} old */
    const grow = (old) => {
      const a = new Float64Array(capacity);
      a.set(old.subarray(0, this.n));
      return a;
    };
    this.step = grow(this.step);
    this.time = grow(this.time);
    this.value = grow(this.value);
    this.min = grow(this.min);
    this.max = grow(this.max);
  }

  /**
   * Replace the content with a history response's series ({step, value, min, max, time}).
   * @param {ApiSeries | null | undefined} obj
   * @returns {this}
   */
  setFromApi(obj) {
    const n = obj && obj.step ? obj.step.length : 0;
    this.n = 0;
    if (n > this.step.length) this._alloc(n);
    for (let i = 0; i < n; i++) {
      const o = /** @type {ApiSeries} */ (obj);
      this.step[i] = o.step[i];
      this.time[i] = o.time[i];
      this.value[i] = numeric(o.value[i]) ?? NaN;
      this.min[i] = numeric(o.min[i]) ?? NaN;
      this.max[i] = numeric(o.max[i]) ?? NaN;
    }
    this.n = n;
    this.version++;
    return this;
  }

  /** The last step held (-Infinity when empty). */
  get lastStep() {
    return this.n ? this.step[this.n - 1] : -Infinity;
  }

  /**
   * Add one raw point (live). Points at or before the last step are ignored (already in).
   * @param {number} step
   * @param {number} time
   * @param {number} value
   * @returns {boolean} whether the point was added
   */
  append(step, time, value) {
    if (step <= this.lastStep) return false;
    if (this.n === this.step.length) this._alloc(this.step.length * 2);
    const i = this.n++;
    this.step[i] = step;
    this.time[i] = time;
    this.value[i] = value;
    this.min[i] = value;
    this.max[i] = value;
    this.version++;
    return true;
  }

  /** Halve the point count by merging neighbours (keeps min, max and the later value). */
  compact() {
    const n = this.n;
    let j = 0;
    for (let i = 0; i < n; i += 2) {
      const k = i + 1 < n ? i + 1 : i;
      this.step[j] = this.step[k];
      this.time[j] = this.time[k];
      this.value[j] = this.value[k];
      this.min[j] = minIgnoringNaN(this.min[i], this.min[k]);
      this.max[j] = maxIgnoringNaN(this.max[i], this.max[k]);
      j++;
    }
    this.n = j;
    this.version++;
  }

  /**
   * Index of the point whose x is nearest to `x` (x from `xs`, ascending); -1 when empty.
   * On a tie, the earlier point.
   * @param {ArrayLike<number>} xs
   * @param {number} x
   */
  nearest(xs, x) {
    let lo = 0;
    let hi = this.n - 1;
    if (hi < 0) return -1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (xs[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0 && Math.abs(xs[lo - 1] - x) <= Math.abs(xs[lo] - x)) return lo - 1;
    return lo;
  }
}

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
