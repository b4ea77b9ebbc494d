// @ts-check
// The gradient explorer's analysis: each parameter's latest norms, their ratio, and the
// flags that put problem layers first (non-finite, exploding, vanishing).

import { numeric } from "./values.js";

// Flag thresholds (docs/ui.md explains them).
export const EXPLODING_VS_MEDIAN = 100; // norm >= 100x the median norm across parameters
export const EXPLODING_VS_OWN = 10; // or >= 10x this parameter's own median over time
export const VANISHING_ABS = 1e-7; // norm <= 1e-7
export const VANISHING_VS_MEDIAN = 1e-4; // or <= 1e-4 x the median across parameters

/** @typedef {"nonfinite" | "exploding" | "vanishing"} Flag */

/** @type {Record<Flag, number>} */
const SEVERITY = { nonfinite: 3, exploding: 2, vanishing: 1 };

/** @type {Record<Flag, string>} */
export const FLAG_TEXT = { nonfinite: "non-finite", exploding: "exploding", vanishing: "vanishing" };

/** @type {Record<Flag, string>} */
export const FLAG_HELP = {
  nonfinite: "NaN or ±inf values in this gradient (now or earlier in the run)",
  exploding: `Norm ≥ ${EXPLODING_VS_MEDIAN}× the median across parameters, or ≥ ${EXPLODING_VS_OWN}× its own median over time`,
  vanishing: `Norm ≤ ${VANISHING_ABS} or ≤ ${VANISHING_VS_MEDIAN}× the median across parameters`,
};

/**
 * A histogram key split into its section and name: "gradients/fc.weight" is parameter
 * "fc.weight" of section "gradients".
 * @typedef {{key: string, name: string}} Param
 */

/**
 * One row of the parameter table. Missing is not NaN: a value that was never logged (no
 * `parameters/<name>` histogram, so no weight norm and no ratio) is `null` and shows as
 * "—"; NaN means a logged value really was NaN (a broken gradient) and is flagged.
 * @typedef {object} ParamRow
 * @property {string} key
 * @property {string} name
 * @property {number | null} norm the latest norm (over the finite values)
 * @property {number | null} wnorm the latest weight norm
 * @property {number | null} ratio norm / weight norm (times lr when known)
 * @property {number} nonfinite NaN and ±inf values in the latest histogram
 * @property {number} everNonfinite the most NaN and ±inf values any histogram had
 * @property {number | null} count values in the latest histogram
 * @property {Flag[]} flags
 * @property {number} severity the worst flag's (0: none)
 */

/**
 * The median of the finite numbers among `xs`; NaN when there is none.
 * @param {(number | null)[]} xs
 * @returns {number}
 */
export function median(xs) {
  const v = /** @type {number[]} */ (xs.filter((x) => Number.isFinite(x))).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/**
 * Split histogram keys into sections: "gradients/x" -> section gradients, name x; keys
 * without a prefix go to "histograms". Gradients first, then parameters, then A→Z.
 * @param {string[]} keys
 * @returns {Map<string, Param[]>}
 */
export function sections(keys) {
  /** @type {Map<string, Param[]>} */
  const out = new Map();
  for (const key of keys) {
    const slash = key.indexOf("/");
    const section = slash > 0 ? key.slice(0, slash) : "histograms";
    const name = slash > 0 ? key.slice(slash + 1) : key;
    let list = out.get(section);
    if (!list) out.set(section, (list = []));
    list.push({ key, name });
  }
  const order = ["gradients", "parameters"];
  return new Map([...out.entries()].sort(([a], [b]) => ((order.indexOf(a) + 1 || 9) - (order.indexOf(b) + 1 || 9)) || a.localeCompare(b)));
}

/**
 * The learning rate in a run's config, if it names one plainly (for update / weight).
 * @param {any} config
 * @returns {number | null}
 */
export function learningRate(config) {
  const c = config || {};
  for (const v of [c.lr, c.learning_rate, c.optimizer && c.optimizer.lr, c.optim && c.optim.lr]) {
    if (typeof v === "number" && Number.isFinite(v) && v > 0) return v;
  }
  return null;
}

/**
 * The most non-finite values (NaN + inf + -inf) any histogram of a key had, from the
 * `K#nan`, `K#inf` and `K#ninf` series of the history API (max per bucket).
 * @param {string} key
 * @param {Record<string, {max: unknown[]} | undefined>} series
 * @returns {number}
 */
export function everNonfinite(key, series) {
  let worst = 0;
  for (const stat of ["nan", "inf", "ninf"]) {
    const s = series[`${key}#${stat}`];
    if (s && s.max.length) worst += Math.max(0, ...s.max.map((x) => numeric(x) || 0));
  }
  return worst;
}

/**
 * The parameter table's rows: latest statistics, ratios and flags. `lr` (or null) turns
 * ‖g‖/‖w‖ into SGD's update-to-weight ratio lr·‖g‖/‖w‖.
 * @param {Param[]} params
 * @param {Record<string, any>} summary the run's summary (latest histograms, statistics included)
 * @param {Record<string, number>} ever per key, the most non-finite values it ever had
 * @param {Record<string, number>} ownMedians per key, the median of its norm over time
 * @param {number | null} [lr]
 * @returns {ParamRow[]}
 */
export function analyse(params, summary, ever, ownMedians, lr = null) {
  /** @type {ParamRow[]} */
  const rows = params.map(({ key, name }) => {
    const g = summary[key] || {};
    const w = summary[`parameters/${name}`] || null;
    const nonfinite = (numeric(g.nan) || 0) + (numeric(g.inf) || 0) + (numeric(g.ninf) || 0);
    const count = numeric(g.count);
    // The norm is over the finite values: of a gradient with none, it is NaN, not 0.
    const norm = count && nonfinite >= count ? NaN : numeric(g.norm);
    const wnorm = w ? numeric(w.norm) : null;
    let ratio = null;
    if (norm !== null && wnorm !== null) ratio = wnorm === 0 ? (norm === 0 ? 0 : Infinity) : ((lr || 1) * norm) / wnorm;
    return {
      key,
      name,
      norm,
      wnorm,
      ratio,
      nonfinite,
      everNonfinite: ever[key] || 0,
      count,
      flags: [],
      severity: 0,
    };
  });
  const med = median(rows.map((r) => r.norm ?? NaN));
  for (const r of rows) {
    const norm = r.norm;
    if (r.nonfinite > 0 || r.everNonfinite > 0 || (norm !== null && !Number.isFinite(norm) && r.count)) r.flags.push("nonfinite");
    const own = ownMedians[r.key];
    const finite = norm !== null && Number.isFinite(norm);
    if (finite && ((med > 0 && norm >= EXPLODING_VS_MEDIAN * med && rows.length > 2) || (own > 0 && norm >= EXPLODING_VS_OWN * own))) r.flags.push("exploding");
    if (finite && (norm <= VANISHING_ABS || (med > 0 && norm <= VANISHING_VS_MEDIAN * med))) r.flags.push("vanishing");
    r.severity = Math.max(0, ...r.flags.map((f) => SEVERITY[f]));
  }
  return rows;
}

/**
 * A column of the parameter table to sort by.
 * @typedef {"name" | "norm" | "wnorm" | "ratio" | "nonfinite" | "severity"} SortColumn
 */

/**
 * The rows sorted by a column: numbers by value, NaN and ±inf beyond the largest (a
 * broken value is the top problem), missing values (never logged) last in both
 * directions; names in natural order. By severity, ties go to the larger norm.
 * @param {ParamRow[]} rows
 * @param {SortColumn} col
 * @param {boolean} desc
 * @returns {ParamRow[]}
 */
export function sortRows(rows, col, desc) {
  const dir = desc ? -1 : 1;
  /** @param {ParamRow} r */
  const val = (r) => (col === "name" ? r.name : r[col]);
  /** @param {number | null | undefined} v */
  const key = (v) => (v === null || v === undefined ? null : Number.isFinite(v) ? v : Infinity);
  return rows.slice().sort((a, b) => {
    if (col === "severity" && a.severity !== b.severity) return (a.severity - b.severity) * dir;
    const x = val(a);
    const y = val(b);
    if (typeof x === "string") return x.localeCompare(/** @type {string} */ (y), undefined, { numeric: true }) * dir;
    const fx = key(x);
    const fy = key(/** @type {number | null} */ (y));
    if (fx === null || fy === null) {
      if (fx !== fy) return fx === null ? 1 : -1;
    } else if (fx !== fy) {
      return (fx > fy ? 1 : -1) * dir;
    }
    return col === "severity" ? (b.norm || 0) - (a.norm || 0) : 0;
  });
}
