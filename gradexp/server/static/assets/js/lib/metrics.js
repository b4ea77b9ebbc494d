// @ts-check
// A run's define_metric definitions, as the run object lists them: which one applies to
// a key (the server's rule: an exact name first, else the last-defined glob that matches;
// `*` matches any characters, "/" included; statistics series `K#stat` never match).

import { STAT_SEP } from "./keys.js";
import { Series } from "./series.js";

/**
 * One definition, as the API sends it.
 * @typedef {{name: string, step_metric: string | null, summary: string[], goal: string | null, hidden: boolean}} MetricDef
 */

/**
 * A matcher over a glob (`*` for any characters).
 * @param {string} glob
 * @returns {RegExp}
 */
export function globRegExp(glob) {
  const parts = glob.split("*").map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${parts.join("[\\s\\S]*")}$`);
}

/** Definitions ready to be matched against keys. */
export class MetricDefs {
  /** @param {MetricDef[]} defs in the order they were defined */
  constructor(defs) {
    /** @type {Map<string, MetricDef>} */
    this.exact = new Map();
    /** @type {[RegExp, MetricDef][]} the last-defined first */
    this.globs = [];
    for (const d of defs || []) {
      if (d.name.includes("*")) this.globs.unshift([globRegExp(d.name), d]);
      else this.exact.set(d.name, d);
    }
  }

  /**
   * The definition that applies to `key`, or null.
   * @param {string} key
   * @returns {MetricDef | null}
   */
  for(key) {
    if (key.includes(STAT_SEP)) return null;
    const found = this.exact.get(key);
    if (found) return found;
    for (const [re, d] of this.globs) if (re.test(key)) return d;
    return null;
  }

  /**
   * The key `key` is charted against by default (its step_metric), or null for the step.
   * @param {string} key
   */
  stepMetric(key) {
    const d = this.for(key);
    return d && d.step_metric && d.step_metric !== key ? d.step_metric : null;
  }

  /**
   * Whether `key` is hidden from the charts by default.
   * @param {string} key
   */
  hidden(key) {
    const d = this.for(key);
    return Boolean(d && d.hidden);
  }
}

/** The definitions of the runs a chart board shows, and the series of their step_metrics. */
export class BoardMetrics {
  /** @param {MetricDef[][]} defsByRun each run's definitions, in the runs' order */
  constructor(defsByRun) {
    this.defs = defsByRun.map((d) => new MetricDefs(d));
    /** @type {Map<string, Map<string, Series>>} step_metric key -> run id -> its series */
    this.axes = new Map();
  }

  /**
   * The step_metric a key is charted against (the first run that defines one), or null.
   * @param {string} key
   */
  stepMetric(key) {
    for (const d of this.defs) {
      const m = d.stepMetric(key);
      if (m) return m;
    }
    return null;
  }

  /**
   * Whether a key is hidden by a definition (of any run).
   * @param {string} key
   */
  hidden(key) {
    return this.defs.some((d) => d.hidden(key));
  }

  /**
   * A run's series of step_metric `key` (shared by the charts drawn against it).
   * @param {string} key
   * @param {{id: string, name: string, color: string}} run
   */
  axis(key, run) {
    let byRun = this.axes.get(key);
    if (!byRun) this.axes.set(key, (byRun = new Map()));
    let s = byRun.get(run.id);
    if (!s) byRun.set(run.id, (s = new Series(run.id, run.name, run.color)));
    return s;
  }
}

/**
 * The x value of each of `steps` on an axis series (a step_metric's values by step):
 * the axis value at that step, interpolated between the axis' points around it, its
 * first value before them and its last after them; NaN without axis points.
 * @param {ArrayLike<number>} steps ascending
 * @param {number} n how many of `steps`
 * @param {ArrayLike<number>} axisSteps ascending
 * @param {ArrayLike<number>} axisValues
 * @param {number} m how many axis points
 * @returns {Float64Array}
 */
export function axisValues(steps, n, axisSteps, axisValues, m) {
  const out = new Float64Array(n);
  let j = 0;
  for (let i = 0; i < n; i++) {
    if (!m) {
      out[i] = NaN;
      continue;
    }
    const s = steps[i];
    while (j < m - 1 && axisSteps[j + 1] <= s) j++;
    if (s <= axisSteps[0]) out[i] = axisValues[0];
    else if (j >= m - 1) out[i] = axisValues[m - 1];
    else {
      const s0 = axisSteps[j];
      const s1 = axisSteps[j + 1];
      const v0 = axisValues[j];
      const v1 = axisValues[j + 1];
      out[i] = s === s0 ? v0 : v0 + ((v1 - v0) * (s - s0)) / (s1 - s0);
    }
  }
  return out;
}
