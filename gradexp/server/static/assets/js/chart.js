// @ts-check
// gradexp's canvas line chart: many points, many runs, live appends.
//
// Design:
// - Two stacked canvases. The base canvas holds axes, the min/max band and the lines and is
//   redrawn only when data, size, zoom or options change. The overlay canvas holds the
//   crosshair, the hover dots and the drag selection, so hovering redraws a few shapes and
//   never the lines: that is what keeps 20 overlaid runs smooth under the mouse.
// - Every redraw is coalesced into one requestAnimationFrame, and skipped while the chart
//   is off screen (the page tells it with `setVisible`); it catches up when it comes back.
// - Canvases are sized in device pixels (devicePixelRatio) and drawn in CSS pixels.
// - Series (`lib/series.js`) come from the server already downsampled: per bucket a value
//   (its last point) and the bucket's min and max. The band between min and max keeps
//   spikes visible.
// - Non-finite values break the line and are marked at the chart's top (NaN, +inf) or
//   bottom (-inf) edge, so a NaN is never silently invisible.
//
// The arithmetic (ticks, spans, series, smoothing) lives in `lib/`, painting in
// `chart-paint.js`, the tooltip in `chart-tooltip.js`; this module holds the state and
// the pointer.

import { paintAxes, paintBand, paintCrosshair, paintLine, paintNonFinite, paintSelection } from "./chart-paint.js";
import { ChartTooltip } from "./chart-tooltip.js";
import { h } from "./dom.js";
import { logTicks, niceTicks, timeTicks, xDomain, yDomain, yExtent } from "./lib/axes.js";
import { fmtClock, fmtNum, fmtRelTick, fmtTick } from "./lib/format.js";
import { axisValues } from "./lib/metrics.js";
import { emaSmooth } from "./lib/series.js";

/** @typedef {import("./lib/series.js").Series} Series */
/** @typedef {import("./chart-paint.js").Plot} Plot */
/** @typedef {import("./chart-tooltip.js").Hit} Hit */
/** @typedef {import("./chart-tooltip.js").XMode} XMode */

/**
 * A zoomed range in x-mode units, with the steps whose points fall in it (null when none
 * does, outside step mode).
 * @typedef {{x0: number, x1: number, steps: [number, number] | null}} ZoomRange
 */

/**
 * @typedef {object} ChartOptions
 * @property {XMode} xMode
 * @property {string} [xName] the step_metric the x axis shows, in the "metric" mode (each
 *   series' `axis` holds its values)
 * @property {boolean} logY
 * @property {number} smoothing EMA weight, 0 (none) to 0.999
 * @property {(range: ZoomRange | null) => void} [onZoom] the user zoomed, or reset (null)
 * @property {(x: number | null, chart: Chart) => void} [onHover] the crosshair's x (on the
 *   point under it), for linked crosshairs; null when it left
 * @property {number} [plotLeft] a fixed left plot margin, to line up with a neighbour
 * @property {number} [padRight] a fixed right plot margin
 */

const PAD = { top: 8, right: 12, bottom: 22, left: 8 };
const LINKED_SNAP_PX = 4; // a linked chart marks its points this close to the shared crosshair
let firstChartMarked = false;
const MAX_BANDS = 6;

/** @type {{grid: string, axis: string} | null} */
let themeCache = null;
/** Grid and axis colours from the stylesheet, read once (getComputedStyle can force a
 * style recalculation, too costly to pay on every redraw). */
function theme() {
  if (!themeCache) {
    const css = getComputedStyle(document.documentElement);
    themeCache = {
      grid: css.getPropertyValue("--chart-grid").trim() || "#edf0f3",
      axis: css.getPropertyValue("--chart-axis").trim() || "#6b7280",
    };
  }
  return themeCache;
}
const FONT = '11px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

/**
 * A 2-D context; a canvas always has one here (it is never given another kind first).
 * @param {HTMLCanvasElement} canvas
 */
function context2d(canvas) {
  return /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
}

/** A line chart in `host` (an element the chart fills); `ChartOptions` above says what it takes. */
export class Chart {
  /**
   * @param {HTMLElement} host
   * @param {Partial<ChartOptions>} [options]
   */
  constructor(host, options = {}) {
    this.host = host;
    /** @type {ChartOptions} */
    this.opts = { xMode: "step", logY: false, smoothing: 0, ...options };
    /** @type {Series[]} */
    this.series = [];
    /** @type {{x0: number, x1: number} | null} in the current x mode's units, or null for everything */
    this.zoom = null;
    this.visible = false;
    this.dirty = true;
    /** @type {{px: number, py: number} | null} the pointer, in CSS pixels */
    this.hover = null;
    /** @type {number | null} a crosshair placed by a linked chart */
    this.linkedX = null;
    /** @type {{px0: number, px1: number} | null} */
    this.drag = null;
    /** @type {Plot | null} the mapping of the last base drawing (null: nothing drawn) */
    this.plot = null;
    /** @type {number | null | undefined} the crosshair last told to onHover */
    this._sentX = undefined;
    this.frame = 0;
    this.overlayFrame = 0;
    this.width = 0;
    this.height = 0;
    this.dpr = 0;
    /** @type {Map<string, {version: number, beta: number, ys: Float64Array}>} */
    this._smoothCache = new Map();
    /** @type {Map<string, {version: number, mode: XMode, t0: number, axis: number, xs: Float64Array}>} */
    this._xsCache = new Map();

    host.classList.add("chart");
    this.base = h("canvas", { class: "chart-base" });
    this.overlay = h("canvas", { class: "chart-overlay" });
    this.tip = new ChartTooltip();
    this.status = h("div", { class: "chart-status", hidden: true });
    host.append(this.base, this.overlay, this.tip.el, this.status);
    this.ctx = context2d(this.base);
    this.octx = context2d(this.overlay);

    this.overlay.addEventListener("pointermove", (e) => this._pointer(e));
    this.overlay.addEventListener("pointerdown", (e) => this._down(e));
    this.overlay.addEventListener("pointerup", (e) => this._up(e));
    this.overlay.addEventListener("pointerleave", () => this._leave());
    this.overlay.addEventListener("dblclick", () => this.resetZoom());

    this.resizer = new ResizeObserver(() => this._resize());
    this.resizer.observe(host);
  }

  destroy() {
    this.resizer.disconnect();
    cancelAnimationFrame(this.frame);
    cancelAnimationFrame(this.overlayFrame);
    this.host.replaceChildren();
  }

  // --- data and options ---

  /** @param {Series[]} series */
  setSeries(series) {
    this.series = series;
    this.tip.build(series.length);
    this.invalidate();
  }

  /** @param {Partial<ChartOptions>} changes */
  setOptions(changes) {
    const before = this.opts.xMode;
    Object.assign(this.opts, changes);
    if (changes.xMode && changes.xMode !== before) this.zoom = null;
    this.invalidate();
  }

  /**
   * Show a message over the plot area (loading, errors, "no data"); null hides it.
   * @param {string | null} text
   */
  setStatus(text) {
    this.status.hidden = !text;
    this.status.textContent = text || "";
  }

  /** @param {boolean} visible */
  setVisible(visible) {
    this.visible = visible;
    if (visible && this.dirty) this._schedule();
  }

  /** Mark the base layer stale and redraw on the next frame (if on screen). */
  invalidate() {
    this.dirty = true;
    this._schedule();
  }

  resetZoom() {
    if (!this.zoom) return;
    this.zoom = null;
    this.invalidate();
    if (this.opts.onZoom) this.opts.onZoom(null);
  }

  /**
   * Zoom to [x0, x1] (x-mode units); tells onZoom with the matching step range.
   * @param {number} x0
   * @param {number} x1
   */
  zoomTo(x0, x1) {
    if (!(x1 > x0)) return;
    this.zoom = { x0, x1 };
    this.invalidate();
    if (this.opts.onZoom) this.opts.onZoom({ x0, x1, steps: this.stepRange(x0, x1) });
  }

  /**
   * The step range whose points fall in [x0, x1] across all series.
   * @param {number} x0
   * @param {number} x1
   * @returns {[number, number] | null}
   */
  stepRange(x0, x1) {
    if (this.opts.xMode === "step") return [Math.max(0, Math.floor(x0)), Math.ceil(x1)];
    let lo = Infinity;
    let hi = -Infinity;
    for (const s of this.series) {
      const xs = this.xs(s);
      for (let i = 0; i < s.n; i++) {
        if (xs[i] >= x0 && xs[i] <= x1) {
          if (s.step[i] < lo) lo = s.step[i];
          if (s.step[i] > hi) hi = s.step[i];
        }
      }
    }
    return lo <= hi ? [lo, hi] : null;
  }

  /**
   * The x values of a series in the current mode (cached per series version).
   * @param {Series} s
   * @returns {Float64Array}
   */
  xs(s) {
    const mode = this.opts.xMode;
    if (mode === "step") return s.step;
    const key = s.id;
    const hit = this._xsCache.get(key);
    const a = s.axis; // "metric": the step_metric's series (define_metric)
    const axisVersion = a ? a.version : -1;
    if (hit && hit.version === s.version && hit.mode === mode && hit.t0 === s.t0 && hit.axis === axisVersion) return hit.xs;
    const xs = mode === "metric" && a ? axisValues(s.step, s.n, a.step, a.value, a.n) : new Float64Array(s.n);
    const t0 = mode === "relative" ? (Number.isFinite(s.t0) ? s.t0 : s.n ? s.time[0] : 0) : 0;
    if (mode !== "metric") for (let i = 0; i < s.n; i++) xs[i] = s.time[i] - t0;
    else if (!a) xs.fill(NaN);
    this._xsCache.set(key, { version: s.version, mode, t0: s.t0, axis: axisVersion, xs });
    return xs;
  }

  /**
   * The values drawn as the line: raw, or EMA-smoothed (cached per series version).
   * @param {Series} s
   * @returns {Float64Array}
   */
  ys(s) {
    const beta = this.opts.smoothing;
    if (!(beta > 0)) return s.value;
    const hit = this._smoothCache.get(s.id);
    if (hit && hit.version === s.version && hit.beta === beta) return hit.ys;
    const ys = emaSmooth(s.value, s.n, beta);
    this._smoothCache.set(s.id, { version: s.version, beta, ys });
    return ys;
  }

  // --- geometry ---

  _resize() {
    const rect = this.host.getBoundingClientRect();
    const w = Math.max(50, Math.floor(rect.width));
    const hgt = Math.max(50, Math.floor(rect.height));
    const dpr = window.devicePixelRatio || 1;
    if (w === this.width && hgt === this.height && dpr === this.dpr) return;
    this.width = w;
    this.height = hgt;
    this.dpr = dpr;
    for (const c of [this.base, this.overlay]) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(hgt * dpr);
      c.style.width = w + "px";
      c.style.height = hgt + "px";
    }
    this.invalidate();
  }

  /**
   * The x and y domains of what is shown.
   * @returns {{x0: number, x1: number, y0: number, y1: number}}
   */
  domains() {
    let x0 = Infinity;
    let x1 = -Infinity;
    const ordered = this.opts.xMode !== "metric"; // a step_metric need not increase
    for (const s of this.series) {
      if (!s.n) continue;
      const xs = this.xs(s);
      if (ordered) {
        if (xs[0] < x0) x0 = xs[0];
        if (xs[s.n - 1] > x1) x1 = xs[s.n - 1];
        continue;
      }
      for (let i = 0; i < s.n; i++) {
        if (xs[i] < x0) x0 = xs[i];
        if (xs[i] > x1) x1 = xs[i];
      }
    }
    if (this.zoom) {
      x0 = this.zoom.x0;
      x1 = this.zoom.x1;
    }
    ({ x0, x1 } = xDomain(x0, x1, !this.zoom && this.opts.xMode === "step"));
    const logY = this.opts.logY;
    const lines = this.series.map((s) => ({ s, xs: this.xs(s), ys: this.ys(s) }));
    // The y range covers what is drawn: bands too, when there are few enough to draw.
    const { y0, y1 } = yExtent(lines, x0, x1, this.series.length <= MAX_BANDS, logY);
    return { x0, x1, ...yDomain(y0, y1, logY) };
  }

  // --- drawing ---

  _schedule() {
    if (!this.visible || this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      if (this.dirty) this.drawBase();
      this.drawOverlay();
    });
  }

  _scheduleOverlay() {
    if (this.overlayFrame) return;
    this.overlayFrame = requestAnimationFrame(() => {
      this.overlayFrame = 0;
      this.drawOverlay();
    });
  }

  /** Draw axes, bands and lines. Sets `this.plot` (the mapping) for the overlay. */
  drawBase() {
    this.dirty = false;
    if (!this.width) this._resize();
    const { ctx, width, height } = this;
    const dpr = this.dpr || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    if (!this.series.length) {
      this.plot = null; // nothing to draw yet (loading): no axes either
      return;
    }
    ctx.font = FONT;
    const d = this.domains();
    const logY = this.opts.logY;

    // y ticks first: their labels decide the left margin.
    const yTicks = logY ? logTicks(d.y0, d.y1, Math.max(2, Math.floor(height / 40))) : niceTicks(d.y0, d.y1, Math.max(2, Math.floor(height / 40))).ticks;
    const yStep = yTicks.length > 1 ? Math.abs(yTicks[1] - yTicks[0]) : Math.abs(d.y1 - d.y0) || 1;
    const yLabels = yTicks.map((v) => (logY ? fmtNum(v, 3) : fmtTick(v, yStep)));
    let labelW = 0;
    for (const s of yLabels) labelW = Math.max(labelW, ctx.measureText(s).width);
    // A fixed left edge lines the plot up with something drawn beside it (the gradient
    // explorer's heatmap); by default the y labels decide it.
    const left = this.opts.plotLeft ?? PAD.left + Math.ceil(labelW) + 6;
    const right = width - (this.opts.padRight ?? PAD.right);
    const bottom = height - PAD.bottom;
    const plotW = Math.max(1, right - left);
    const plotH = Math.max(1, bottom - PAD.top);
    const ly0 = logY ? Math.log10(d.y0) : d.y0;
    const ly1 = logY ? Math.log10(d.y1) : d.y1;
    const sx = plotW / (d.x1 - d.x0);
    const sy = plotH / (ly1 - ly0);
    /** @type {Plot} */
    const plot = {
      left,
      top: PAD.top,
      right,
      bottom,
      d,
      w: plotW,
      h: plotH,
      px: (x) => left + (x - d.x0) * sx,
      py: logY ? (y) => bottom - (Math.log10(y) - ly0) * sy : (y) => bottom - (y - ly0) * sy,
      xAt: (px) => d.x0 + (px - left) / sx,
    };
    this.plot = plot;

    const xt = this._xTicks(d, plot.w);
    paintAxes(ctx, plot, width, yTicks, yLabels, xt.ticks, xt.label, theme());

    // data, clipped to the plot area
    ctx.save();
    ctx.beginPath();
    ctx.rect(plot.left, plot.top - 1, plot.w, plot.h + 2);
    ctx.clip();
    const smoothing = this.opts.smoothing > 0;
    // Bands are drawn for a few runs; past that they are noise (and most of the fill
    // cost), while the tooltip still gives every point's min…max.
    if (this.series.length <= MAX_BANDS) for (const s of this.series) paintBand(ctx, s, this.xs(s), plot, logY);
    for (const s of this.series) {
      const xs = this.xs(s);
      if (smoothing) {
        ctx.globalAlpha = 0.28;
        paintLine(ctx, s, xs, s.value, plot, 1.2, logY);
        ctx.globalAlpha = 1;
        paintLine(ctx, s, xs, this.ys(s), plot, 1.8, logY);
      } else {
        paintLine(ctx, s, xs, s.value, plot, 1.6, logY);
      }
    }
    ctx.restore();
    for (const s of this.series) paintNonFinite(ctx, s, this.xs(s), plot);
    if (this.series.length) this._announce();
  }

  /** Tell whoever listens that data was drawn: a `gradexp:drawn` event on the host (with
   * the last step on screen) and, once per page, the `gradexp:first-chart` performance mark
   * (devtools and benchmarks read them; both cost nothing when nobody listens). */
  _announce() {
    let last = -Infinity;
    for (const s of this.series) if (s.n && s.lastStep > last) last = s.lastStep;
    if (!firstChartMarked) {
      firstChartMarked = true;
      performance.mark("gradexp:first-chart");
    }
    this.host.dispatchEvent(new CustomEvent("gradexp:drawn", { bubbles: true, detail: { lastStep: last } }));
  }

  /**
   * The x ticks for the current mode, and how to label them.
   * @param {{x0: number, x1: number}} d
   * @param {number} plotW
   * @returns {{ticks: number[], label: (v: number) => string}}
   */
  _xTicks(d, plotW) {
    const target = Math.max(3, Math.floor(plotW / 70));
    const mode = this.opts.xMode;
    if (mode === "step" || mode === "metric") {
      const { ticks, step } = niceTicks(d.x0, d.x1, target, mode === "step");
      return { ticks, label: (v) => fmtTick(v, step) };
    }
    const { ticks, step } = timeTicks(d.x0, d.x1, target, mode === "wall");
    return { ticks, label: mode === "wall" ? (v) => fmtClock(v, step) : (v) => fmtRelTick(v, step) };
  }

  // --- overlay: crosshair, hover dots, selection ---

  drawOverlay() {
    const { octx: ctx, width, height, plot } = this;
    const dpr = this.dpr || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    if (!plot) {
      this._setCrosshair(null);
      return;
    }
    if (this.drag && Math.abs(this.drag.px1 - this.drag.px0) > 1) paintSelection(ctx, plot, this.drag.px0, this.drag.px1);
    /** @type {number | null} */
    let x = null;
    /** @type {Hit[]} */
    let hits = [];
    /** @type {Hit | null} */
    let head = null;
    if (this.hover) {
      const target = this._hoverTarget();
      if (target) ({ x, hits, head } = target);
      // Data may have changed under a still pointer (a live point, a zoom): the other
      // charts follow this chart's crosshair, not the one of the last mouse move.
      this._broadcast(x);
    } else if (this.linkedX !== null) {
      x = this.linkedX;
      // A linked chart marks only points that really sit under the shared crosshair.
      const at = plot.px(x);
      hits = this.hitsAt(x).filter((hit) => Math.abs(plot.px(hit.x) - at) <= LINKED_SNAP_PX);
    }
    if (x === null || x < plot.d.x0 || x > plot.d.x1) {
      this.tip.hide();
      this._setCrosshair(null);
      return;
    }
    paintCrosshair(ctx, plot, x, hits, this.opts.logY);
    this._setCrosshair(x);
    if (this.hover) {
      this.tip.show(hits, head, { pointer: this.hover, py: plot.py, width: this.width, height: this.height, xMode: this.opts.xMode, xName: this.opts.xName, smoothed: this.opts.smoothing > 0 });
    } else {
      this.tip.hide();
    }
  }

  /** Where a hovered chart's crosshair goes: on the point nearest the pointer (any
   * series), so the line passes through the point the tooltip names, and every linked
   * chart draws its crosshair at that same x. Null when no point is on screen.
   * @returns {{x: number, hits: Hit[], head: Hit} | null} */
  _hoverTarget() {
    const plot = this.plot;
    if (!this.hover || !plot) return null;
    // Hovering the margins means the nearest end of the plot (the last point is easy to reach).
    const xData = Math.min(plot.d.x1, Math.max(plot.d.x0, plot.xAt(this.hover.px)));
    const hits = this.hitsAt(xData);
    /** @type {Hit | null} */
    let head = null;
    for (const hit of hits) {
      if (hit.x < plot.d.x0 || hit.x > plot.d.x1) continue; // zoomed past this series' points
      if (!head || Math.abs(hit.x - xData) < Math.abs(head.x - xData)) head = hit;
    }
    return head ? { x: head.x, hits, head } : null;
  }

  /**
   * Tell the board where this chart's crosshair is (x-mode units), once per change.
   * @param {number | null} x
   */
  _broadcast(x) {
    if (x === this._sentX) return;
    this._sentX = x;
    if (this.opts.onHover) this.opts.onHover(x, this);
  }

  /**
   * The crosshair's x as a data attribute (tests and tools read it; no layout cost).
   * @param {number | null} x
   */
  _setCrosshair(x) {
    if (x === null) {
      if (this.host.dataset.crosshair !== undefined) delete this.host.dataset.crosshair;
    } else {
      this.host.dataset.crosshair = String(x);
    }
  }

  /**
   * For each series, its point nearest to x (the values the tooltip lists).
   * @param {number} x
   * @returns {Hit[]}
   */
  hitsAt(x) {
    /** @type {Hit[]} */
    const out = [];
    for (const s of this.series) {
      const xs = this.xs(s);
      const i = s.nearest(xs, x);
      if (i < 0) continue;
      const ys = this.ys(s);
      out.push({ series: s, index: i, x: xs[i], step: s.step[i], time: s.time[i], y: ys[i], raw: s.value[i], min: s.min[i], max: s.max[i] });
    }
    return out;
  }

  // --- pointer ---

  /** @param {PointerEvent} e */
  _local(e) {
    const r = this.overlay.getBoundingClientRect();
    return { px: e.clientX - r.left, py: e.clientY - r.top };
  }

  /** @param {PointerEvent} e */
  _pointer(e) {
    const p = this._local(e);
    this.hover = p;
    this.linkedX = null;
    if (this.drag) this.drag.px1 = p.px;
    this._scheduleOverlay();
    // Linked charts move in this same event, not a frame later.
    const target = this._hoverTarget();
    this._broadcast(target ? target.x : null);
  }

  /** @param {PointerEvent} e */
  _down(e) {
    if (e.button !== 0 || !this.plot) return;
    const p = this._local(e);
    if (p.px < this.plot.left || p.px > this.plot.right) return;
    this.overlay.setPointerCapture(e.pointerId);
    this.drag = { px0: p.px, px1: p.px };
  }

  /** @param {PointerEvent} e */
  _up(e) {
    const drag = this.drag;
    this.drag = null;
    if (this.overlay.hasPointerCapture(e.pointerId)) this.overlay.releasePointerCapture(e.pointerId);
    this._scheduleOverlay();
    if (!drag || !this.plot) return;
    const a = Math.min(drag.px0, drag.px1);
    const b = Math.max(drag.px0, drag.px1);
    if (b - a < 5) return;
    const plot = this.plot;
    const x0 = plot.xAt(Math.max(plot.left, a));
    const x1 = plot.xAt(Math.min(plot.right, b));
    this.zoomTo(x0, x1);
  }

  _leave() {
    if (this.drag) return;
    this.hover = null;
    this._scheduleOverlay();
    this._broadcast(null);
  }

  /**
   * A linked chart hovers at `x` (or stopped: null): draw a crosshair without a tooltip.
   * @param {number | null} x
   */
  setLinkedX(x) {
    if (this.hover) return;
    this.linkedX = x;
    if (this.visible) this._scheduleOverlay();
    else this._setCrosshair(null);
  }
}
