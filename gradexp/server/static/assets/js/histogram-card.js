// @ts-check
// One parameter of the gradient explorer: a step x value heatmap of its distribution over
// time (every histogram resampled onto one value grid) with percentile lines, a step
// slider with the histogram at that step and its statistics, and a chart of percentile
// bands. Loaded lazily, when the page scrolls it into view.
//
// The heatmap and the percentile chart under it share one x axis (steps, same plot
// margins), so a column of the heatmap sits exactly over the same step of the chart.

import { api, qs, seg } from "./api.js";
import { Chart } from "./chart.js";
import { h, replace } from "./dom.js";
import { fitCanvas, paintGrid } from "./heatmap.js";
import { lut } from "./lib/colormaps.js";
import { fmtCompact, fmtNum, fmtTick } from "./lib/format.js";
import { FLAG_HELP, FLAG_TEXT } from "./lib/gradients.js";
import { columnIndices, densityColumn, edgeRange, nearestIndex, percentiles, resample } from "./lib/histogram.js";
import { Series } from "./lib/series.js";
import { niceTicks } from "./lib/axes.js";
import { numeric } from "./lib/values.js";

/** @typedef {import("./lib/gradients.js").Param} Param */
/** @typedef {import("./lib/gradients.js").ParamRow} ParamRow */

/**
 * The histograms of one key, as `/runs/{id}/histograms` sends them (parallel arrays).
 * @typedef {{step: number[], time: number[], bins: (unknown[] | null)[], counts: (number[] | null)[]}} Histograms
 */

const HEATMAP_STEPS = 200; // histograms fetched per parameter
const CELLS = 64; // value cells per heatmap column
const QS = [0.05, 0.25, 0.5, 0.75, 0.95];
const HEAT_LEFT = 56; // the heatmap's (and the percentile chart's) left plot margin
const HEAT_RIGHT = 8;
/** @type {Record<string, string>} */
const STAT_NAMES = { min: "Minimum", max: "Maximum", mean: "Mean", std: "Standard deviation", norm: "L2 norm", count: "Values", zeros: "Zeros", nan: "NaN values", inf: "+inf values", ninf: "−inf values" };

/**
 * The elements of a loaded card (made anew by each load) and where the heatmap's plot is.
 * @typedef {object} CardView
 * @property {HTMLCanvasElement} heat
 * @property {HTMLElement} heatTip
 * @property {HTMLCanvasElement} histCanvas
 * @property {HTMLElement} statsEl
 * @property {HTMLInputElement} slider
 * @property {HTMLOutputElement} stepOut
 * @property {{x: number, y: number, w: number, h: number}} plotRect
 */

/** One parameter: heatmap, percentile lines, step slider, histogram at step, bands chart. */
export class HistogramCard {
  /**
   * @param {any} run the run, as the API sends it
   * @param {Param} param
   * @param {ParamRow | undefined} row its row of the table (for the flags)
   */
  constructor(run, param, row) {
    this.run = run;
    this.param = param;
    this.loaded = false;
    /** @type {Histograms | null} */
    this.data = null;
    this.lo = -1;
    this.hi = 1;
    /** @type {Float64Array[]} per histogram: CELLS densities, top = highest value, -1 = empty */
    this.columns = [];
    /** @type {number[][]} per histogram: its percentiles (QS) */
    this.pcts = [];
    this.index = 0;
    this.statsReq = 0;
    /** @type {CardView | null} */
    this.view = null;
    /** @type {ResizeObserver | null} */
    this.resizer = null;
    this.flagsEl = h("span", { class: "card-flags" });
    this.setFlags(row);
    this.body = h("div", { class: "hist-body" }, h("p", { class: "muted loading", text: "Loading histograms…" }));
    this.updateBtn = h("button", { type: "button", class: "button small", hidden: true, text: "New steps: update", title: "Redraw with the histograms logged since", on: { click: () => this.reload() } });
    this.el = h("section", { class: "card hist-card", id: param.key, dataset: { key: param.key } }, h("div", { class: "media-head" }, h("h3", { class: "mono", text: param.name }), this.flagsEl, this.updateBtn, h("span", { class: "kind", text: param.key })), this.body);
  }

  /**
   * The parameter's flags, as the table has them now (they follow live data at once: a
   * flag is news, not a redraw).
   * @param {ParamRow | undefined} row
   */
  setFlags(row) {
    replace(this.flagsEl, row ? row.flags.map((f) => h("span", { class: ["flag", "flag-" + f], title: FLAG_HELP[f], text: FLAG_TEXT[f] })) : []);
  }

  /**
   * New histograms arrived (live run): offer to redraw without pulling the rug.
   * @param {ParamRow | undefined} row
   */
  markStale(row) {
    this.setFlags(row);
    if (this.loaded) this.updateBtn.hidden = false;
  }

  reload() {
    this.updateBtn.hidden = true;
    this.loaded = false;
    this.load();
  }

  async load() {
    if (this.loaded) return;
    this.loaded = true;
    /** @type {Histograms} */
    let res;
    try {
      res = await api(`/runs/${seg(this.run.id)}/histograms${qs({ key: this.param.key, samples: HEATMAP_STEPS })}`);
    } catch (err) {
      replace(this.body, h("p", { class: "error", text: /** @type {Error} */ (err).message }));
      return;
    }
    if (!res.step.length) {
      replace(this.body, h("p", { class: "muted", text: "No histograms yet." }));
      return;
    }
    this.data = res;
    this.prepare(res);
    this.build(res);
    this.el.dataset.steps = String(res.step.length);
    this.el.dataset.lastStep = String(res.step[res.step.length - 1]);
  }

  /**
   * Every histogram on one value grid (the heatmap's columns) and its percentiles.
   * @param {Histograms} data
   */
  prepare({ bins, counts }) {
    const { lo, hi } = edgeRange(bins);
    this.lo = lo;
    this.hi = hi;
    this.columns = [];
    this.pcts = [];
    const col = new Float64Array(CELLS);
    for (let i = 0; i < bins.length; i++) {
      const edges = (bins[i] || []).map((x) => /** @type {number} */ (numeric(x)));
      const cnt = counts[i] || [];
      resample(edges, cnt, lo, hi, CELLS, col);
      this.columns.push(densityColumn(col));
      this.pcts.push(edges.length ? percentiles(edges, cnt, QS) : QS.map(() => NaN));
    }
  }

  /** @param {Histograms} data */
  build({ step }) {
    const heat = h("canvas", { class: "heat", "aria-label": `Distribution of ${this.param.name} over steps` });
    const heatTip = h("div", { class: "muted heat-tip", text: "Click the heatmap to pick a step." });
    const histCanvas = h("canvas", { class: "hist" });
    const statsEl = h("div", { class: "stats compact" });
    this.index = step.length - 1;
    const slider = h("input", { type: "range", min: "0", max: String(step.length - 1), value: String(this.index), "aria-label": `Step for ${this.param.name}` });
    const stepOut = h("output", { class: "step-label" });
    const view = { heat, heatTip, histCanvas, statsEl, slider, stepOut, plotRect: { x: 0, y: 0, w: 1, h: 1 } };
    this.view = view;
    slider.addEventListener("input", () => this.select(Number(slider.value)));
    const bandsHost = h("div", { class: "bands-plot" });
    replace(
      this.body,
      h(
        "div",
        { class: "hist-layout" },
        h(
          "div",
          { class: "hist-left" },
          h("div", { class: "heat-wrap" }, heat),
          h("div", { class: "slider" }, slider, stepOut),
          heatTip,
          h("div", { class: "sub", text: "Percentiles: median, 25–75 % and 5–95 % bands" }),
          bandsHost,
        ),
        h("div", { class: "hist-right" }, h("div", { class: "sub", text: "Histogram at step" }), histCanvas, statsEl),
      ),
    );
    /** @param {MouseEvent} e */
    const indexAt = (e) => {
      const r = heat.getBoundingClientRect();
      const plot = view.plotRect;
      const x = e.clientX - r.left;
      if (x < plot.x - 4 || x > plot.x + plot.w + 4) return -1;
      return nearestIndex(step, stepAt(step, plot, x));
    };
    heat.addEventListener("click", (e) => {
      const i = indexAt(e);
      if (i >= 0) this.select(i);
    });
    heat.addEventListener("pointermove", (e) => {
      const r = heat.getBoundingClientRect();
      const plot = view.plotRect;
      const i = indexAt(e);
      const v = this.hi - ((e.clientY - r.top - plot.y) / plot.h) * (this.hi - this.lo);
      if (i >= 0 && v >= this.lo && v <= this.hi) heatTip.textContent = `step ${fmtNum(step[i])} · value ${fmtNum(v)} · median ${fmtNum(this.pcts[i][2])}`;
    });
    this.drawHeat();
    this.select(this.index);
    this.drawBands(bandsHost);
    if (this.resizer) this.resizer.disconnect();
    this.resizer = new ResizeObserver(() => this.drawHeat());
    this.resizer.observe(/** @type {HTMLElement} */ (heat.parentElement));
  }

  drawHeat() {
    const view = this.view;
    if (!view || !this.data) return;
    const wrap = /** @type {HTMLElement} */ (view.heat.parentElement);
    const width = Math.max(200, wrap.clientWidth || 500);
    const height = 200;
    const { ctx } = fitCanvas(view.heat, width, height);
    const plot = { x: HEAT_LEFT, y: 4, w: width - HEAT_LEFT - HEAT_RIGHT, h: height - 26 };
    view.plotRect = plot;
    ctx.clearRect(0, 0, width, height);
    const { step } = this.data;
    const n = step.length;
    const s0 = step[0];
    const s1 = step[step.length - 1];
    const span = s1 - s0 || 1;
    /** @type {(s: number) => number} */
    const px = n > 1 ? (s) => plot.x + ((s - s0) / span) * plot.w : () => plot.x + plot.w / 2;
    // One pixel column per screen column, each showing the histogram whose step is nearest
    // (so columns are as wide as the gaps between logged steps, aligned with the chart below).
    const cols = Math.max(1, Math.round(plot.w));
    const grid = new Float64Array(CELLS * cols);
    const sources = columnIndices(step, cols);
    for (let c = 0; c < cols; c++) {
      const column = this.columns[sources[c]];
      for (let k = 0; k < CELLS; k++) grid[k * cols + c] = column[k];
    }
    paintGrid(ctx, CELLS, cols, grid, (v) => (v < 0 ? 0 : Math.round(v * 255)), lut("density"), plot);
    // percentile lines
    /** @param {number} v */
    const py = (v) => plot.y + ((this.hi - v) / (this.hi - this.lo)) * plot.h;
    /**
     * @param {number} q index into QS
     * @param {number[]} dash
     * @param {number} lineWidth
     */
    const line = (q, dash, lineWidth) => {
      ctx.beginPath();
      ctx.setLineDash(dash);
      ctx.lineWidth = lineWidth;
      let pen = false;
      for (let k = 0; k < n; k++) {
        const v = this.pcts[k][q];
        if (!Number.isFinite(v)) {
          pen = false;
          continue;
        }
        if (pen) ctx.lineTo(px(step[k]), py(v));
        else ctx.moveTo(px(step[k]), py(v));
        pen = true;
      }
      ctx.stroke();
    };
    ctx.save();
    ctx.beginPath();
    ctx.rect(plot.x, plot.y, plot.w, plot.h);
    ctx.clip();
    ctx.strokeStyle = "rgba(232, 89, 12, 0.9)";
    line(2, [], 1.6);
    ctx.strokeStyle = "rgba(232, 89, 12, 0.7)";
    line(0, [3, 3], 1);
    line(4, [3, 3], 1);
    ctx.setLineDash([]);
    ctx.restore();
    // axes: value labels at the top, middle and bottom; nice step ticks like the charts'
    ctx.fillStyle = "#6b7280";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const [v, y] of [
      [this.hi, plot.y + 5],
      [(this.hi + this.lo) / 2, plot.y + plot.h / 2],
      [this.lo, plot.y + plot.h - 5],
    ])
      ctx.fillText(fmtCompact(v), plot.x - 6, y);
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const ticks = niceTicks(s0, s1, Math.max(2, Math.floor(plot.w / 70)), true);
    let lastRight = -Infinity;
    for (const t of ticks.ticks) {
      const x = px(t);
      const label = fmtTick(t, ticks.step);
      const w = ctx.measureText(label).width;
      if (x - w / 2 <= lastRight + 6 || x + w / 2 > width) continue;
      ctx.fillText(label, x, plot.y + plot.h + 5);
      lastRight = x + w / 2;
    }
    // selected step
    ctx.strokeStyle = "rgba(17, 24, 39, 0.75)";
    ctx.lineWidth = 1;
    const x = Math.round(px(step[this.index])) + 0.5;
    ctx.beginPath();
    ctx.moveTo(x, plot.y);
    ctx.lineTo(x, plot.y + plot.h);
    ctx.stroke();
  }

  /**
   * Show the histogram at the i-th step, and that step's statistics.
   * @param {number} i
   */
  async select(i) {
    const view = this.view;
    if (!view || !this.data) return;
    this.index = i;
    view.slider.value = String(i);
    const step = this.data.step[i];
    view.stepOut.textContent = `step ${fmtNum(step)}`;
    this.drawHeat();
    this.drawHist(view.histCanvas, this.data, i);
    // the statistics of that step's histogram (count, NaN, inf...) live in its row
    const id = ++this.statsReq;
    const res = await api(`/runs/${seg(this.run.id)}/history/rows${qs({ keys: this.param.key, min_step: step, max_step: step, limit: 10 })}`).catch(() => null);
    if (id !== this.statsReq || !res) return;
    /** @type {Record<string, any>[]} */
    const rows = res.rows;
    const row = rows.reverse().find((r) => r[this.param.key]);
    const v = row ? row[this.param.key] : null;
    if (!v) return;
    const stats = ["min", "max", "mean", "std", "norm", "count", "zeros", "nan", "inf", "ninf"];
    replace(
      view.statsEl,
      stats.map((s) => {
        const x = numeric(v[s]);
        const bad = ((s === "nan" || s === "inf" || s === "ninf") && x !== null && x > 0) || (x !== null && !Number.isFinite(x));
        return h("div", { class: ["stat", bad ? "bad" : null], title: `${STAT_NAMES[s]}: ${fmtNum(x, 10)}` }, h("span", { class: "stat-name", text: s }), h("span", { class: "stat-value", text: fmtCompact(x) }));
      }),
    );
  }

  /**
   * The histogram at the i-th step, as bars over its own value range.
   * @param {HTMLCanvasElement} canvas
   * @param {Histograms} data
   * @param {number} i
   */
  drawHist(canvas, data, i) {
    const edges = (data.bins[i] || []).map((x) => /** @type {number} */ (numeric(x)));
    const counts = data.counts[i] || [];
    const width = Math.max(200, /** @type {HTMLElement} */ (canvas.parentElement).clientWidth || 260);
    const height = 120;
    const { ctx } = fitCanvas(canvas, width, height);
    ctx.clearRect(0, 0, width, height);
    if (!counts.length) return;
    if (!counts.some((c) => c > 0)) {
      ctx.fillStyle = "#8a93a2";
      ctx.font = "12px system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.fillText("No finite values at this step", width / 2, height / 2);
      return;
    }
    const max = Math.max(...counts) || 1;
    const lo = edges[0];
    const hi = edges[edges.length - 1];
    const span = hi - lo || 1;
    const plot = { x: 4, y: 4, w: width - 8, h: height - 20 };
    ctx.fillStyle = "#3b82f6";
    for (let b = 0; b < counts.length; b++) {
      const x0 = plot.x + ((edges[b] - lo) / span) * plot.w;
      const x1 = plot.x + ((edges[b + 1] - lo) / span) * plot.w;
      const hh = (counts[b] / max) * plot.h;
      ctx.fillRect(x0, plot.y + plot.h - hh, Math.max(1, x1 - x0 - 0.5), hh);
    }
    // the zero line, when zero is inside the range: where a distribution sits matters
    if (lo < 0 && hi > 0) {
      const z = Math.round(plot.x + ((0 - lo) / span) * plot.w) + 0.5;
      ctx.strokeStyle = "rgba(17, 24, 39, 0.35)";
      ctx.setLineDash([2, 2]);
      ctx.beginPath();
      ctx.moveTo(z, plot.y);
      ctx.lineTo(z, plot.y + plot.h);
      ctx.stroke();
      ctx.setLineDash([]);
    }
    ctx.fillStyle = "#6b7280";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "top";
    ctx.textAlign = "left";
    ctx.fillText(fmtCompact(lo), plot.x, plot.y + plot.h + 4);
    ctx.textAlign = "right";
    ctx.fillText(fmtCompact(hi), plot.x + plot.w, plot.y + plot.h + 4);
  }

  /**
   * The chart of percentile bands under the heatmap: the median with its 5–95 % and
   * 25–75 % bands.
   * @param {HTMLElement} host
   */
  drawBands(host) {
    if (!this.data) return;
    const { step, time } = this.data;
    /**
     * @param {string} id
     * @param {string} label
     * @param {number} qLo index into QS of the band's bottom
     * @param {number} qHi and of its top
     * @param {string} color
     */
    const mk = (id, label, qLo, qHi, color) =>
      new Series(id, label, color).setFromApi({
        step,
        time,
        value: this.pcts.map((p) => p[2]),
        min: this.pcts.map((p) => p[qLo]),
        max: this.pcts.map((p) => p[qHi]),
      });
    // The heatmap's margins, so the two share their x axis pixel for pixel.
    const chart = new Chart(host, { xMode: "step", plotLeft: HEAT_LEFT, padRight: HEAT_RIGHT });
    chart.setSeries([mk("p5", "median (5–95 %)", 0, 4, "#e8590c"), mk("p25", "median (25–75 %)", 1, 3, "#e8590c")]);
    chart.setVisible(true);
  }
}

/**
 * The step under a heatmap pixel column `x`.
 * @param {number[]} step
 * @param {{x: number, w: number}} plot
 * @param {number} x
 */
function stepAt(step, plot, x) {
  const s0 = step[0];
  const s1 = step[step.length - 1];
  return s0 + ((x - plot.x) / plot.w) * (s1 - s0 || 1);
}
