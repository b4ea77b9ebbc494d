// @ts-check
// Metric keys and the groups the chart board shows them in.

/** Between a histogram's (or tensor's) key and one of its statistics: `grad/fc#norm`. */
export const STAT_SEP = "#";

/** Prefixes shown first, in this order. */
const PRIORITY = ["train", "val", "valid", "validation", "eval", "test"];

/**
 * The group a key belongs to: its prefix up to the first "/" ("" for none); statistics
 * of histograms (`K#stat`) go to their own group per prefix.
 * @param {string} key
 * @returns {string}
 */
export function groupOf(key) {
  const hash = key.indexOf(STAT_SEP);
  const base = hash >= 0 ? key.slice(0, hash) : key;
  const slash = base.indexOf("/");
  const prefix = slash > 0 ? base.slice(0, slash) : "";
  return hash >= 0 ? `${prefix || "histograms"} ${STAT_SEP} stats` : prefix;
}

/**
 * Group display order (a sort comparator): train, val, ... first, then other prefixes
 * A→Z, then the keys without a prefix ("Other"), then the statistics groups.
 * @param {string} a
 * @param {string} b
 * @returns {number}
 */
export function groupOrder(a, b) {
  /** @param {string} g */
  const tier = (g) => (g.includes(STAT_SEP) ? 2 : g === "" ? 1 : 0);
  if (tier(a) !== tier(b)) return tier(a) - tier(b);
  const ra = PRIORITY.indexOf(a);
  const rb = PRIORITY.indexOf(b);
  if (ra >= 0 || rb >= 0) return (ra < 0 ? 99 : ra) - (rb < 0 ? 99 : rb);
  return a.localeCompare(b);
}
