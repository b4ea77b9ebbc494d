// @ts-check
// The ranks of a distributed run (docs/distributed.md): which one the page shows, and how
// each is described. Pure helpers, tested in tests/js/ranks.test.mjs.

/**
 * @typedef {{rank: number, state: string, exit_code: number | null, last_step: number, host?: Record<string, any>}} Writer
 */

/**
 * The rank a page shows: ``?rank=N`` when the run has that rank, else 0.
 * @param {{writers?: Writer[]}} run
 * @param {string} search location.search
 * @returns {number}
 */
export function pickRank(run, search) {
  const raw = new URLSearchParams(search).get("rank");
  const rank = raw !== null && /^\d+$/.test(raw) ? Number(raw) : 0;
  return (run.writers || []).some((w) => w.rank === rank) ? rank : 0;
}

/**
 * One rank in a few words: "rank 1 · failed, exit code 1".
 * @param {Writer} w
 * @returns {string}
 */
export function writerLabel(w) {
  const code = w.state === "failed" && w.exit_code !== null ? `, exit code ${w.exit_code}` : "";
  return `rank ${w.rank} · ${w.state}${code}`;
}

/**
 * What went wrong with the run, by rank: "rank 1 failed (exit code 1); rank 3 crashed"
 * (the empty string when every rank is fine).
 * @param {{writers?: Writer[]}} run
 * @returns {string}
 */
export function rankTrouble(run) {
  return (run.writers || [])
    .filter((w) => w.state === "failed" || w.state === "crashed")
    .map((w) => (w.state === "failed" ? `rank ${w.rank} failed (exit code ${w.exit_code})` : `rank ${w.rank} crashed (no heartbeat)`))
    .join("; ");
}

/**
 * The query string of a page of ``rank`` (rank 0: none), keeping the hash.
 * @param {number} rank
 * @param {string} hash
 * @returns {string}
 */
export function rankHref(rank, hash) {
  return (rank ? `?rank=${rank}` : "?") + (hash || "");
}
