// @ts-check
// A chart's tooltip: the point under the crosshair and every series' value there.
//
// Its rows are made once per series count and reused (only their text changes on a
// move: with 20 runs, 40 strings instead of 100 new nodes), and it is placed by CSS
// alone, so moving the mouse never makes the script wait for a layout to measure it.

import { h } from "./dom.js";
import { fmtClock, fmtDateTime, fmtDuration, fmtNum } from "./lib/format.js";

/** @typedef {import("./lib/series.js").Series} Series */
/** @typedef {"step" | "relative" | "wall" | "metric"} XMode "metric": a define_metric step_metric's values */

/**
 * A series' point nearest the crosshair: its x in the chart's mode, its step and time,
 * the value drawn (`y`, smoothed or raw), the raw value and its bucket's min and max.
 * @typedef {{series: Series, index: number, x: number, step: number, time: number, y: number, raw: number, min: number, max: number}} Hit
 */

/** @typedef {{el: HTMLElement, swatch: HTMLElement, label: HTMLElement, value: HTMLElement, at: HTMLElement, raw: HTMLElement, range: HTMLElement}} TipRow */

/**
 * Where a point is, in full: the tooltip's header.
 * @param {Hit} hit
 * @param {XMode} mode
 * @param {string} xName the step_metric's name (the "metric" mode)
 */
function xLabel(hit, mode, xName) {
  if (mode === "wall") return fmtDateTime(hit.time) + ":" + String(new Date(hit.time * 1000).getSeconds()).padStart(2, "0");
  if (mode === "relative") return fmtDuration(hit.x) + ` · step ${fmtNum(hit.step)}`;
  if (mode === "metric") return `${xName} ${fmtNum(hit.x, 6)} · step ${fmtNum(hit.step)}`;
  return `step ${fmtNum(hit.step)}`;
}

/**
 * Where a point is, briefly (a row whose point is not under the crosshair).
 * @param {Hit} hit
 * @param {XMode} mode
 * @param {string} xName
 */
function xShort(hit, mode, xName) {
  if (mode === "wall") return fmtClock(hit.time, 1);
  if (mode === "relative") return fmtDuration(hit.x);
  if (mode === "metric") return `${xName} ${fmtNum(hit.x, 6)}`;
  return `step ${fmtNum(hit.step)}`;
}

export class ChartTooltip {
  constructor() {
    this.el = h("div", { class: "chart-tip", hidden: true, role: "tooltip" });
    this.head = h("div", { class: "tip-head" });
    /** @type {TipRow[] | null} */
    this.rows = null;
  }

  hide() {
    this.el.hidden = true;
  }

  /**
   * Make the rows for `n` series (built when data arrives, so the first hover does not
   * pay for it); nothing when they are there already.
   * @param {number} n
   */
  build(n) {
    if (this.rows && this.rows.length === n) return;
    this.head = h("div", { class: "tip-head" });
    this.rows = Array.from({ length: n }, () => {
      const swatch = h("span", { class: "swatch" });
      const label = h("span", { class: "tip-label" });
      const value = h("span", { class: "tip-value" });
      const at = h("span", { class: "tip-at", hidden: true });
      const raw = h("span", { class: "tip-raw", hidden: true });
      const range = h("span", { class: "tip-range", hidden: true });
      const el = h("div", { class: "tip-row" }, swatch, label, value, at, raw, range);
      return { el, swatch, label, value, at, raw, range };
    });
    this.el.replaceChildren(this.head, ...this.rows.map((r) => r.el));
  }

  /**
   * Show the values at the crosshair: `head` is the hit under it, `pointer` the mouse (CSS
   * pixels in the chart). The series nearest the pointer vertically is emphasised.
   * @param {Hit[]} hits
   * @param {Hit | null} head
   * @param {object} at
   * @param {{px: number, py: number}} at.pointer
   * @param {(y: number) => number} at.py the plot's data y to pixel y
   * @param {number} at.width the chart's CSS size
   * @param {number} at.height
   * @param {XMode} at.xMode
   * @param {string} [at.xName] the step_metric's name, in the "metric" mode
   * @param {boolean} at.smoothed whether the lines are smoothed (the raw value is shown too)
   */
  show(hits, head, { pointer, py, width, height, xMode, xName = "", smoothed }) {
    const tip = this.el;
    if (!hits.length || !head) {
      tip.hidden = true;
      return;
    }
    let best = -1;
    let bestDist = Infinity;
    hits.forEach((hit, k) => {
      if (hit.y - hit.y !== 0) return;
      const dist = Math.abs(py(hit.y) - pointer.py);
      if (dist < bestDist) {
        bestDist = dist;
        best = k;
      }
    });
    this.build(hits.length);
    const rows = /** @type {TipRow[]} */ (this.rows);
    // Many runs read best ranked: highest value first (non-finite last).
    if (hits.length > 5) {
      const bestHit = hits[best];
      /** @param {number} v */
      const rank = (v) => (v === v ? v : -Infinity);
      hits = hits.slice().sort((a, b) => (rank(a.y) > rank(b.y) ? -1 : rank(a.y) < rank(b.y) ? 1 : 0));
      best = hits.indexOf(bestHit);
    }
    // The header names the point under the crosshair; a run whose nearest point is
    // elsewhere (runs may log different steps) says where its value is from.
    this.head.textContent = xLabel(head, xMode, xName);
    hits.forEach((hit, k) => {
      const row = rows[k];
      row.el.classList.toggle("tip-best", k === best && hits.length > 1);
      row.swatch.style.background = hit.series.color;
      row.label.textContent = hit.series.label;
      row.value.textContent = fmtNum(hit.y, 6);
      const elsewhere = hit.x !== head.x;
      row.at.hidden = !elsewhere;
      if (elsewhere) row.at.textContent = "@ " + xShort(hit, xMode, xName);
      const showRaw = smoothed && hit.raw === hit.raw;
      row.raw.hidden = !showRaw;
      if (showRaw) row.raw.textContent = fmtNum(hit.raw, 6);
      const showRange = hit.min !== hit.max;
      row.range.hidden = !showRange;
      if (showRange) row.range.textContent = `${fmtNum(hit.min, 3)} … ${fmtNum(hit.max, 3)}`;
    });
    tip.hidden = false;
    // Right of the cursor, or left of it past the middle. Vertically, the cursor sits as
    // far down the tooltip as it is down the chart, so a tall tooltip (20 runs) grows away
    // from the nearer edge instead of off the chart. Horizontally it is clamped inside the
    // chart by CSS too (`100%` in a translate is the tooltip's own width), so on a narrow
    // screen it never leaves the page.
    const x = Math.round(pointer.px);
    const y = Math.round(Math.max(0, Math.min(pointer.py, height)));
    const left = x > width / 2 ? `calc(${x - 14}px - 100%)` : `${x + 14}px`;
    const down = Math.round((y / Math.max(1, height)) * 100);
    tip.style.transform = `translate(clamp(0px, ${left}, calc(${width}px - 100%)), ${y}px) translateY(-${down}%)`;
  }
}
