// @ts-check
// A logged gradexp.Table as the UI shows it: the table's file (columnar JSON, see
// docs/protocol.md "Values") made into rows, sorted by a column, filtered by text, paged.
// Pure functions: the Media tab's table card (media.js) draws what these return.

import { numeric } from "./values.js";

/**
 * A table's file: `data` holds one list of cells per column.
 * @typedef {{format: string, rows: number, columns: {name: string, type: string}[], data: any[][]}} TableDoc
 */

/**
 * One row per index, each a list of cells in column order.
 * @param {TableDoc} doc
 * @returns {any[][]}
 */
export function tableRows(doc) {
  const cols = doc.data || [];
  const n = cols.length ? Math.max(...cols.map((c) => c.length)) : doc.rows || 0;
  /** @type {any[][]} */
  const rows = [];
  for (let r = 0; r < n; r++) rows.push(cols.map((c) => (r < c.length ? c[r] : null)));
  return rows;
}

/**
 * True for an image cell (an object naming the run file that holds the image).
 * @param {unknown} v
 * @returns {v is {path: string, width: number, height: number, size: number, caption?: string}}
 */
export function isImageCell(v) {
  return v !== null && typeof v === "object" && typeof (/** @type {{path?: unknown}} */ (v).path) === "string";
}

/**
 * A cell as text (what the filter searches and a plain cell shows).
 * @param {unknown} v
 */
export function cellText(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return v ? "true" : "false";
  if (isImageCell(v)) return v.caption || "";
  const x = numeric(v);
  if (x !== null) return Number.isNaN(x) ? "NaN" : x === Infinity ? "inf" : x === -Infinity ? "-inf" : String(x);
  return JSON.stringify(v);
}

/**
 * Sort order of two cells of a column: numbers (NaN after every number) before booleans
 * before strings before images; empty cells always last, whatever the direction.
 * @param {unknown} a
 * @param {unknown} b
 * @param {1 | -1} dir
 */
export function compareCells(a, b, dir) {
  const ea = a === null || a === undefined;
  const eb = b === null || b === undefined;
  if (ea || eb) return ea && eb ? 0 : ea ? 1 : -1;
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return (ra - rb) * dir;
  if (ra === 0) {
    const x = /** @type {number} */ (numeric(a));
    const y = /** @type {number} */ (numeric(b));
    const nx = Number.isNaN(x);
    const ny = Number.isNaN(y);
    if (nx || ny) return nx && ny ? 0 : nx ? 1 : -1; // NaN last, whatever the direction
    return (x < y ? -1 : x > y ? 1 : 0) * dir;
  }
  return COLLATOR.compare(cellText(a), cellText(b)) * dir;
}

// Text as people sort it: "bird" < "cat" < "Catfish", "img2" < "img10".
const COLLATOR = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

/** @param {unknown} v */
function rank(v) {
  if (typeof v === "boolean") return 1;
  if (typeof v === "string") return 2;
  if (isImageCell(v)) return 3;
  return numeric(v) !== null ? 0 : 4;
}

/**
 * The indices of the rows to show: those where some cell contains `filter` (case
 * insensitive; all rows when empty), sorted by column `sortCol` (-1: logged order;
 * a stable sort, so equal cells keep their logged order).
 * @param {any[][]} rows
 * @param {{filter?: string, sortCol?: number, dir?: 1 | -1}} view
 * @returns {number[]}
 */
export function visibleRows(rows, { filter = "", sortCol = -1, dir = 1 } = {}) {
  const needle = filter.trim().toLowerCase();
  let idx = rows.map((_, i) => i);
  if (needle) idx = idx.filter((i) => rows[i].some((cell) => cellText(cell).toLowerCase().includes(needle)));
  if (sortCol >= 0) idx.sort((i, j) => compareCells(rows[i][sortCol], rows[j][sortCol], dir) || i - j);
  return idx;
}

/**
 * The page of `total` items holding `page` (clamped), `size` per page.
 * @param {number} total
 * @param {number} page
 * @param {number} size
 * @returns {{page: number, pages: number, start: number, end: number}}
 */
export function pageOf(total, page, size) {
  const pages = Math.max(1, Math.ceil(total / size));
  const p = Math.min(Math.max(0, page), pages - 1);
  return { page: p, pages, start: p * size, end: Math.min(total, (p + 1) * size) };
}
