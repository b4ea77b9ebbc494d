// @ts-check
// Facts about runs that several pages show: colour, duration, config values, default
// columns.

/** Run colours: distinct, readable on white, colour-blind friendlier first. */
export const PALETTE = [
  "#2563eb", "#e8590c", "#0f9d58", "#c2255c", "#7048e8", "#0c8599", "#d6336c", "#5c940d",
  "#1864ab", "#a61e4d", "#e67700", "#2b8a3e", "#862e9c", "#087f5b", "#364fc7", "#c92a2a",
  "#74b816", "#495057", "#f08c00", "#1098ad",
];

/**
 * The colour of the i-th run (any integer: the palette repeats, negatives included).
 * @param {number} i
 * @returns {string}
 */
export const colorFor = (i) => PALETTE[((i % PALETTE.length) + PALETTE.length) % PALETTE.length];

/**
 * A run's duration in seconds: to its end, to now while running, else to its last
 * heartbeat (a crashed run).
 * @param {{started_at: number, finished_at?: number | null, heartbeat_at?: number | null, state?: string}} run
 * @param {number} [now] Unix time
 * @returns {number}
 */
export function runDuration(run, now = Date.now() / 1000) {
  const end = run.finished_at ?? (run.state === "running" ? now : run.heartbeat_at);
  return /** @type {number} */ (end) - run.started_at;
}

/**
 * `{a: {b: 1}, c: 2}` -> [["a.b", 1], ["c", 2]]. Typed values, arrays and empty objects
 * are leaves.
 * @param {unknown} obj
 * @param {string} [prefix]
 * @param {[string, unknown][]} [out]
 * @returns {[string, unknown][]}
 */
export function flatten(obj, prefix = "", out = []) {
  if (!obj || typeof obj !== "object") return out;
  for (const [k, v] of Object.entries(obj)) {
    const name = prefix + k;
    if (v && typeof v === "object" && !Array.isArray(v) && !v._type && Object.keys(v).length) flatten(v, name + ".", out);
    else out.push([name, v]);
  }
  return out;
}

/**
 * The value at a dotted path of a nested config ("model.width"); a key that itself holds
 * dots wins. Undefined when there is none.
 * @param {any} config
 * @param {string} path
 * @returns {unknown}
 */
export function configAt(config, path) {
  if (config && Object.prototype.hasOwnProperty.call(config, path)) return config[path];
  let cur = config;
  for (const part of path.split(".")) {
    if (cur === null || typeof cur !== "object" || !Object.prototype.hasOwnProperty.call(cur, part)) return undefined;
    cur = cur[part];
  }
  return cur;
}

/**
 * The direction of a column's first click: names A→Z, losses and errors lowest first,
 * everything else (times, steps, accuracies) highest or newest first. Returns "" or "-".
 * @param {string} key a column: "name", "started_at", "summary:loss", "config:lr"...
 * @returns {"" | "-"}
 */
export function firstDirection(key) {
  if (key === "name") return "";
  if (/^(summary|config):/.test(key) && /loss|err|perplex|ppl|mse|mae|rmse|nll|wer|cer|time|latency/i.test(key)) return "";
  return "-";
}

/**
 * A few summary keys to show when the user has not chosen: losses and accuracies first.
 * @param {string[]} keys
 * @returns {string[]} columns ("summary:<key>"), at most 4
 */
export function defaultColumns(keys) {
  /** @param {string} k */
  const score = (k) => (/loss/i.test(k) ? 0 : /acc|f1|auc|score|bleu|map/i.test(k) ? 1 : 2);
  return keys
    .filter((k) => !k.startsWith("_"))
    .slice()
    .sort((a, b) => score(a) - score(b) || a.localeCompare(b))
    .slice(0, 4)
    .map((k) => "summary:" + k);
}
