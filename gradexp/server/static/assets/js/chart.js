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
// - Series come from the server already downsampled: per bucket a value (its last point)
//   and the bucket's min and max. The band between min and max keeps spikes visible.
// - Non-finite values break the line and are marked at the chart's top (NaN, +inf) or
//   bottom (-inf) edge, so a NaN is never silently invisible.

import { h } from "./dom.js";
import { fmtClock, fmtDateTime, fmtDuration, fmtNum, fmtRelTick, fmtTick } from "./format.js";

/** Run colours: distinct, readable on white, colour-blind friendlier first. */
export const PALETTE = [
  "#2563eb", "#e8590c", "#0f9d58", "#c2255c", "#7048e8", "#0c8599", "#d6336c", "#5c940d",
  "#1864ab", "#a61e4d", "#e67700", "#2b8a3e", "#862e9c", "#087f5b", "#364fc7", "#c92a2a",
  "#74b816", "#495057", "#f08c00", "#1098ad",
];

export const colorFor = (i) => PALETTE[((i % PALETTE.length) + PALETTE.length) % PALETTE.length];

// --- series --------------------------------------------------------------------------------

const NONFINITE = { NaN: NaN, Infinity: Infinity, "-Infinity": -Infinity };
function num(v) {
  if (typeof v === "number") return v;
  if (typeof v === "boolean") return v ? 1 : 0;
  if (v && typeof v === "object" && v._type === "float") return NONFINITE[v.value] ?? NaN;
  return NaN;
}

function minIgnoringNaN(a, b) {
  if (a !== a) return b;
  if (b !== b) return a;
  return a < b ? a : b;
}
function maxIgnoringNaN(a, b) {
  if (a !== a) return b;
  if (b !== b) return a;
  return a > b ? a : b;
}

/** One line: parallel typed arrays in step order, growable for live appends. */
export class Series {
  constructor(id, label, color, capacity = 64) {
    this.id = id;
    this.label = label;
    this.color = color;
    this.n = 0;
    this.t0 = NaN; // the run's start time, for the relative-time axis
    this.version = 0; // bumped on every change (caches key on it)
    this._alloc(capacity);
  }

  _alloc(capacity) {
    const grow = (old) => {
      const a = new Float64Array(capacity);
      if (old) a.set(old.subarray(0, this.n));
      return a;
    };
    this.step = grow(this.step);
    this.time = grow(this.time);
    this.value = grow(this.value);
    this.min = grow(this.min);
    this.max = grow(this.max);
  }

  /** Replace the content with a history response's series ({step, value, min, max, time}). */
  setFromApi(obj) {
    const n = obj && obj.step ? obj.step.length : 0;
    this.n = 0;
    if (n > this.step.length) this._alloc(n);
    for (let i = 0; i < n; i++) {
      this.step[i] = obj.step[i];
      this.time[i] = obj.time[i];
      this.value[i] = num(obj.value[i]);
      this.min[i] = num(obj.min[i]);
      this.max[i] = num(obj.max[i]);
    }
    this.n = n;
    this.version++;
    return this;
  }

  get lastStep() {
    return this.n ? this.step[this.n - 1] : -Infinity;
  }

  /** Add one raw point (live). Points at or before the last step are ignored (already in). */
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

  /** Index of the point whose x is nearest to `x` (x from `xs`, ascending). */
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

/** Debiased exponential moving average (as TensorBoard): non-finite values pass through. */
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

// --- ticks ---------------------------------------------------------------------------------

/** A "nice" step (1, 2 or 5 times a power of ten) for about `target` ticks over `range`. */
export function niceStep(range, target) {
  if (!(range > 0)) return 1;
  const raw = range / Math.max(1, target);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const r = raw / mag;
  return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
}

/** Ticks covering [lo, hi], `step` apart, on multiples of `step`. */
export function niceTicks(lo, hi, target, integer = false) {
  let step = niceStep(hi - lo, target);
  if (integer) step = Math.max(1, Math.round(step));
  const ticks = [];
  const first = Math.ceil(lo / step - 1e-9);
  for (let k = first; k * step <= hi + step * 1e-9 && ticks.length < 100; k++) ticks.push(k * step);
  return { ticks, step };
}

/** Ticks for a log axis over [lo, hi] (lo > 0): decades, or 1-2-5 within a few decades. */
export function logTicks(lo, hi, target) {
  const d0 = Math.floor(Math.log10(lo));
  const d1 = Math.ceil(Math.log10(hi));
  const decades = d1 - d0;
  const mults = decades <= 2 ? [1, 2, 5] : [1];
  const every = Math.max(1, Math.ceil(decades / target));
  const ticks = [];
  for (let d = d0; d <= d1; d += mults.length === 1 ? every : 1) {
    for (const m of mults) {
      const v = m * Math.pow(10, d);
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) ticks.push(v);
    }
  }
  if (ticks.length < 2) return niceTicks(lo, hi, target).ticks.filter((v) => v > 0);
  return ticks;
}

const TIME_STEPS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];

/** Ticks for a time axis (seconds): steps from a human list, aligned in local time. */
export function timeTicks(lo, hi, target, wall) {
  const raw = (hi - lo) / Math.max(1, target);
  let step = TIME_STEPS.find((s) => s >= raw);
  if (step === undefined) step = niceStep(hi - lo, target);
  const tz = wall ? -new Date(lo * 1000).getTimezoneOffset() * 60 : 0;
  const ticks = [];
  for (let t = Math.ceil((lo + tz) / step) * step - tz; t <= hi && ticks.length < 100; t += step) ticks.push(t);
  return { ticks, step };
}

// --- the chart -----------------------------------------------------------------------------

const PAD = { top: 8, right: 12, bottom: 22, left: 8 };
const LINKED_SNAP_PX = 4; // a linked chart marks its points this close to the shared crosshair
let firstChartMarked = false;
const MAX_BANDS = 6;

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
 * A line chart in `host` (an element the chart fills).
 * Options: xMode ("step" | "relative" | "wall"), logY, smoothing (0..0.999),
 * onZoom(range|null) when the user zooms or resets (range: {x0, x1, steps: [lo, hi]}),
 * onHover(x|null) with the crosshair's x (on the point under it) for linked crosshairs,
 * plotLeft / padRight (fixed plot margins, to line up with a neighbour).
 */
export class Chart {
  constructor(host, options = {}) {
    this.host = host;
    this.opts = { xMode: "step", logY: false, smoothing: 0, ...options };
    this.series = [];
    this.zoom = null; // {x0, x1} in the current x mode's units, or null for everything
    this.visible = false;
    this.dirty = true;
    this.hover = null; // {px, py} in CSS pixels, or null
    this.linkedX = null; // a crosshair placed by a linked chart
    this.drag = null;
    this.frame = 0;
    this.overlayFrame = 0;
    this.width = 0;
    this.height = 0;
    this._smoothCache = new Map();
    this._xsCache = new Map();

    host.classList.add("chart");
    this.base = h("canvas", { class: "chart-base" });
    this.overlay = h("canvas", { class: "chart-overlay" });
    this.tooltip = h("div", { class: "chart-tip", hidden: true, role: "tooltip" });
    this.status = h("div", { class: "chart-status", hidden: true });
    host.append(this.base, this.overlay, this.tooltip, this.status);
    this.ctx = this.base.getContext("2d");
    this.octx = this.overlay.getContext("2d");

    this._onMove = (e) => this._pointer(e);
    this._onDown = (e) => this._down(e);
    this._onUp = (e) => this._up(e);
    this._onLeave = () => this._leave();
    this._onDbl = () => this.resetZoom();
    this.overlay.addEventListener("pointermove", this._onMove);
    this.overlay.addEventListener("pointerdown", this._onDown);
    this.overlay.addEventListener("pointerup", this._onUp);
    this.overlay.addEventListener("pointerleave", this._onLeave);
    this.overlay.addEventListener("dblclick", this._onDbl);

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

  setSeries(series) {
    this.series = series;
    this._tipBuild(series.length);
    this.invalidate();
  }

  setOptions(changes) {
    const before = this.opts.xMode;
    Object.assign(this.opts, changes);
    if (changes.xMode && changes.xMode !== before) this.zoom = null;
    this.invalidate();
  }

  /** Show a message over the plot area (loading, errors, "no data"); null hides it. */
  setStatus(text) {
    this.status.hidden = !text;
    this.status.textContent = text || "";
  }

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

  /** Zoom to [x0, x1] (x-mode units); tells onZoom with the matching step range. */
  zoomTo(x0, x1) {
    if (!(x1 > x0)) return;
    this.zoom = { x0, x1 };
    this.invalidate();
    if (this.opts.onZoom) this.opts.onZoom({ x0, x1, steps: this.stepRange(x0, x1) });
  }

  /** The step range whose points fall in [x0, x1] across all series. */
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

  /** The x values of a series in the current mode (cached per series version). */
  xs(s) {
    const mode = this.opts.xMode;
    if (mode === "step") return s.step;
    const key = s.id;
    const hit = this._xsCache.get(key);
    if (hit && hit.version === s.version && hit.mode === mode && hit.t0 === s.t0) return hit.xs;
    const xs = new Float64Array(s.n);
    const t0 = mode === "relative" ? (Number.isFinite(s.t0) ? s.t0 : s.n ? s.time[0] : 0) : 0;
    for (let i = 0; i < s.n; i++) xs[i] = s.time[i] - t0;
    this._xsCache.set(key, { version: s.version, mode, t0: s.t0, xs });
    return xs;
  }

  /** The values drawn as the line: raw, or EMA-smoothed (cached per series version). */
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

  /** The x and y domains of what is shown. */
  domains() {
    let x0 = Infinity;
    let x1 = -Infinity;
    for (const s of this.series) {
      if (!s.n) continue;
      const xs = this.xs(s);
      if (xs[0] < x0) x0 = xs[0];
      if (xs[s.n - 1] > x1) x1 = xs[s.n - 1];
    }
    if (this.zoom) {
      x0 = this.zoom.x0;
      x1 = this.zoom.x1;
    }
    if (!(x1 >= x0)) {
      x0 = 0;
      x1 = 1;
    }
    // Steps read best from 0: downsampled buckets are named by their last step, so a run
    // logged from step 0 would otherwise start its axis at 4 or 17.
    if (!this.zoom && this.opts.xMode === "step" && x0 > 0 && x0 <= 0.02 * (x1 - x0)) x0 = 0;
    if (x1 === x0) {
      x0 -= 1;
      x1 += 1;
    }
    const logY = this.opts.logY;
    let y0 = Infinity;
    let y1 = -Infinity;
    const see = (v) => {
      if (v - v !== 0 || (logY && v <= 0)) return;
      if (v < y0) y0 = v;
      if (v > y1) y1 = v;
    };
    const bands = this.series.length <= MAX_BANDS; // the y range covers what is drawn
    for (const s of this.series) {
      const xs = this.xs(s);
      const ys = this.ys(s);
      for (let i = 0; i < s.n; i++) {
        const x = xs[i];
        if (x < x0 || x > x1) continue;
        if (bands) {
          see(s.min[i]);
          see(s.max[i]);
        }
        see(ys[i]);
        if (ys !== s.value) see(s.value[i]); // the faded raw line under a smoothed one
      }
    }
    if (!(y1 >= y0)) {
      y0 = logY ? 0.1 : 0;
      y1 = logY ? 10 : 1;
    }
    if (logY) {
      let l0 = Math.log10(y0);
      let l1 = Math.log10(y1);
      if (l1 - l0 < 1e-9) {
        l0 -= 0.5;
        l1 += 0.5;
      }
      const pad = (l1 - l0) * 0.05;
      return { x0, x1, y0: Math.pow(10, l0 - pad), y1: Math.pow(10, l1 + pad) };
    }
    if (y1 - y0 < 1e-12 * Math.max(1, Math.abs(y0))) {
      const d = Math.abs(y0) * 0.05 || 1;
      y0 -= d;
      y1 += d;
    } else {
      const pad = (y1 - y0) * 0.05;
      y0 -= pad;
      y1 += pad;
    }
    return { x0, x1, y0, y1 };
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
    const plot = {
      left,
      top: PAD.top,
      right: width - (this.opts.padRight ?? PAD.right),
      bottom: height - PAD.bottom,
      d,
    };
    plot.w = Math.max(1, plot.right - plot.left);
    plot.h = Math.max(1, plot.bottom - plot.top);
    const ly0 = logY ? Math.log10(d.y0) : d.y0;
    const ly1 = logY ? Math.log10(d.y1) : d.y1;
    const sx = plot.w / (d.x1 - d.x0);
    const sy = plot.h / (ly1 - ly0);
    plot.px = (x) => plot.left + (x - d.x0) * sx;
    plot.py = logY ? (y) => plot.bottom - (Math.log10(y) - ly0) * sy : (y) => plot.bottom - (y - ly0) * sy;
    plot.xAt = (px) => d.x0 + (px - plot.left) / sx;
    this.plot = plot;

    const { grid, axis } = theme();

    // grid and y labels
    ctx.lineWidth = 1;
    ctx.strokeStyle = grid;
    ctx.fillStyle = axis;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    ctx.beginPath();
    yTicks.forEach((v, i) => {
      const y = Math.round(plot.py(v)) + 0.5;
      if (y < plot.top - 1 || y > plot.bottom + 1) return;
      ctx.moveTo(plot.left, y);
      ctx.lineTo(plot.right, y);
      ctx.fillText(yLabels[i], plot.left - 6, y);
    });
    // x ticks
    const xt = this._xTicks(d, plot.w);
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    let lastRight = -Infinity;
    for (const v of xt.ticks) {
      const x = Math.round(plot.px(v)) + 0.5;
      if (x < plot.left - 1 || x > plot.right + 1) continue;
      ctx.moveTo(x, plot.top);
      ctx.lineTo(x, plot.bottom);
      const label = xt.label(v);
      const w = ctx.measureText(label).width;
      if (x - w / 2 > lastRight + 6 && x + w / 2 <= width) {
        ctx.fillText(label, x, plot.bottom + 5);
        lastRight = x + w / 2;
      }
    }
    ctx.stroke();

    // data, clipped to the plot area
    ctx.save();
    ctx.beginPath();
    ctx.rect(plot.left, plot.top - 1, plot.w, plot.h + 2);
    ctx.clip();
    const smoothing = this.opts.smoothing > 0;
    // Bands are drawn for a few runs; past that they are noise (and most of the fill
    // cost), while the tooltip still gives every point's min…max.
    if (this.series.length <= MAX_BANDS) for (const s of this.series) this._drawBand(s, plot);
    for (const s of this.series) {
      if (smoothing) {
        ctx.globalAlpha = 0.28;
        this._drawLine(s, s.value, plot, 1.2);
        ctx.globalAlpha = 1;
        this._drawLine(s, this.ys(s), plot, 1.8);
      } else {
        this._drawLine(s, s.value, plot, 1.6);
      }
    }
    ctx.restore();
    for (const s of this.series) this._drawNonFinite(s, plot);
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

  _xTicks(d, plotW) {
    const target = Math.max(3, Math.floor(plotW / 70));
    const mode = this.opts.xMode;
    if (mode === "step") {
      const { ticks, step } = niceTicks(d.x0, d.x1, target, true);
      return { ticks, label: (v) => fmtTick(v, step) };
    }
    const { ticks, step } = timeTicks(d.x0, d.x1, target, mode === "wall");
    return { ticks, label: mode === "wall" ? (v) => fmtClock(v, step) : (v) => fmtRelTick(v, step) };
  }

  _drawBand(s, plot) {
    const n = s.n;
    if (n < 2) return;
    const { ctx } = this;
    const xs = this.xs(s);
    const { x0, x1 } = plot.d;
    const logY = this.opts.logY;
    const ok = (i) => {
      const a = s.min[i];
      const b = s.max[i];
      return a - a === 0 && b - b === 0 && (!logY || a > 0);
    };
    // Only draw when some bucket holds more than one value.
    let any = false;
    for (let i = 0; i < n; i++) {
      if (s.min[i] !== s.max[i]) {
        any = true;
        break;
      }
    }
    if (!any) return;
    ctx.fillStyle = s.color;
    ctx.globalAlpha = 0.14;
    let i = lowerBound(xs, n, x0) - 1;
    if (i < 0) i = 0;
    const end = Math.min(n, lowerBound(xs, n, x1) + 1);
    while (i < end) {
      while (i < end && !ok(i)) i++;
      const start = i;
      while (i < end && ok(i)) i++;
      if (i - start < 2) continue;
      ctx.beginPath();
      ctx.moveTo(plot.px(xs[start]), plot.py(s.max[start]));
      for (let k = start + 1; k < i; k++) ctx.lineTo(plot.px(xs[k]), plot.py(s.max[k]));
      for (let k = i - 1; k >= start; k--) ctx.lineTo(plot.px(xs[k]), plot.py(s.min[k]));
      ctx.closePath();
      ctx.fill();
    }
    ctx.globalAlpha = 1;
  }

  _drawLine(s, ys, plot, width) {
    const n = s.n;
    if (!n) return;
    const { ctx } = this;
    const xs = this.xs(s);
    const logY = this.opts.logY;
    ctx.strokeStyle = s.color;
    ctx.lineWidth = width;
    ctx.lineJoin = "round";
    ctx.lineCap = "round";
    let start = lowerBound(xs, n, plot.d.x0) - 1;
    if (start < 0) start = 0;
    const end = Math.min(n, lowerBound(xs, n, plot.d.x1) + 1);
    ctx.beginPath();
    let pen = false;
    let lonely = -1; // a finite point with no finite neighbour: drawn as a dot
    let run = 0;
    for (let i = start; i < end; i++) {
      const y = ys[i];
      if (y - y !== 0 || (logY && y <= 0)) {
        if (run === 1) this._dot(ctx, plot, xs[lonely], ys[lonely], s.color);
        pen = false;
        run = 0;
        continue;
      }
      const px = plot.px(xs[i]);
      const py = plot.py(y);
      if (pen) ctx.lineTo(px, py);
      else ctx.moveTo(px, py);
      pen = true;
      run++;
      lonely = i;
    }
    ctx.stroke();
    if (run === 1) this._dot(ctx, plot, xs[lonely], ys[lonely], s.color);
  }

  _dot(ctx, plot, x, y, color) {
    ctx.save();
    ctx.fillStyle = color;
    ctx.beginPath();
    ctx.arc(plot.px(x), plot.py(y), 2.5, 0, Math.PI * 2);
    ctx.fill();
    ctx.restore();
  }

  _drawNonFinite(s, plot) {
    const { ctx } = this;
    const xs = this.xs(s);
    let drawn = 0;
    ctx.fillStyle = s.color;
    for (let i = 0; i < s.n && drawn < 2000; i++) {
      const v = s.value[i];
      if (v - v === 0) continue;
      const x = xs[i];
      if (x < plot.d.x0 || x > plot.d.x1) continue;
      const px = plot.px(x);
      const top = v === -Infinity ? plot.bottom : plot.top;
      const dir = v === -Infinity ? -1 : 1;
      ctx.beginPath();
      ctx.moveTo(px - 3.5, top);
      ctx.lineTo(px + 3.5, top);
      ctx.lineTo(px, top + 5 * dir);
      ctx.closePath();
      ctx.fill();
      drawn++;
    }
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
    if (this.drag && Math.abs(this.drag.px1 - this.drag.px0) > 1) {
      const a = Math.max(plot.left, Math.min(this.drag.px0, this.drag.px1));
      const b = Math.min(plot.right, Math.max(this.drag.px0, this.drag.px1));
      ctx.fillStyle = "rgba(37, 99, 235, 0.10)";
      ctx.fillRect(a, plot.top, b - a, plot.h);
      ctx.strokeStyle = "rgba(37, 99, 235, 0.55)";
      ctx.lineWidth = 1;
      ctx.strokeRect(Math.round(a) + 0.5, plot.top + 0.5, Math.round(b - a), plot.h - 1);
    }
    let x = null;
    let hits = [];
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
      this.tooltip.hidden = true;
      this._setCrosshair(null);
      return;
    }
    const px = Math.round(plot.px(x)) + 0.5;
    ctx.strokeStyle = "rgba(55, 65, 81, 0.45)";
    ctx.lineWidth = 1;
    ctx.setLineDash([3, 3]);
    ctx.beginPath();
    ctx.moveTo(px, plot.top);
    ctx.lineTo(px, plot.bottom);
    ctx.stroke();
    ctx.setLineDash([]);
    for (const hit of hits) {
      const y = hit.y;
      if (y - y !== 0 || (this.opts.logY && y <= 0)) continue;
      const hx = plot.px(hit.x);
      if (hx < plot.left - 1 || hx > plot.right + 1) continue;
      ctx.fillStyle = "#fff";
      ctx.strokeStyle = hit.series.color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(hx, plot.py(y), 3.5, 0, Math.PI * 2);
      ctx.fill();
      ctx.stroke();
    }
    this._setCrosshair(x);
    if (this.hover) this._showTooltip(hits, head);
    else this.tooltip.hidden = true;
  }

  /** Where a hovered chart's crosshair goes: on the point nearest the pointer (any
   * series), so the line passes through the point the tooltip names, and every linked
   * chart draws its crosshair at that same x. Null when no point is on screen. */
  _hoverTarget() {
    const plot = this.plot;
    if (!this.hover || !plot) return null;
    // Hovering the margins means the nearest end of the plot (the last point is easy to reach).
    const xData = Math.min(plot.d.x1, Math.max(plot.d.x0, plot.xAt(this.hover.px)));
    const hits = this.hitsAt(xData);
    let head = null;
    for (const hit of hits) {
      if (hit.x < plot.d.x0 || hit.x > plot.d.x1) continue; // zoomed past this series' points
      if (!head || Math.abs(hit.x - xData) < Math.abs(head.x - xData)) head = hit;
    }
    return head ? { x: head.x, hits, head } : null;
  }

  /** Tell the board where this chart's crosshair is (x-mode units), once per change. */
  _broadcast(x) {
    if (x === this._sentX) return;
    this._sentX = x;
    if (this.opts.onHover) this.opts.onHover(x, this);
  }

  /** The crosshair's x as a data attribute (tests and tools read it; no layout cost). */
  _setCrosshair(x) {
    if (x === null) {
      if (this.host.dataset.crosshair !== undefined) delete this.host.dataset.crosshair;
    } else {
      this.host.dataset.crosshair = String(x);
    }
  }

  /** For each series, its point nearest to x (the values the tooltip lists). */
  hitsAt(x) {
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

  _xLabel(hit) {
    const mode = this.opts.xMode;
    if (mode === "wall") return fmtDateTime(hit.time) + ":" + String(new Date(hit.time * 1000).getSeconds()).padStart(2, "0");
    if (mode === "relative") return fmtDuration(hit.x) + ` · step ${fmtNum(hit.step)}`;
    return `step ${fmtNum(hit.step)}`;
  }

  _showTooltip(hits, head) {
    const tip = this.tooltip;
    if (!hits.length || !head) {
      tip.hidden = true;
      return;
    }
    const plot = this.plot;
    // The series nearest the pointer vertically is emphasised.
    let best = -1;
    let bestDist = Infinity;
    hits.forEach((hit, k) => {
      if (hit.y - hit.y !== 0) return;
      const dist = Math.abs(plot.py(hit.y) - this.hover.py);
      if (dist < bestDist) {
        bestDist = dist;
        best = k;
      }
    });
    const smoothing = this.opts.smoothing > 0;
    this._tipBuild(hits.length);
    // Many runs read best ranked: highest value first (non-finite last).
    if (hits.length > 5) {
      const bestHit = hits[best];
      const rank = (v) => (v === v ? v : -Infinity);
      hits = hits.slice().sort((a, b) => (rank(a.y) > rank(b.y) ? -1 : rank(a.y) < rank(b.y) ? 1 : 0));
      best = hits.indexOf(bestHit);
    }
    // The header names the point under the crosshair; a run whose nearest point is
    // elsewhere (runs may log different steps) says where its value is from.
    this._tipHead.textContent = this._xLabel(head);
    hits.forEach((hit, k) => {
      const row = this._tipRows[k];
      row.el.classList.toggle("tip-best", k === best && hits.length > 1);
      row.swatch.style.background = hit.series.color;
      row.label.textContent = hit.series.label;
      row.value.textContent = fmtNum(hit.y, 6);
      const elsewhere = hit.x !== head.x;
      row.at.hidden = !elsewhere;
      if (elsewhere) row.at.textContent = "@ " + this._xShort(hit);
      const showRaw = smoothing && hit.raw === hit.raw;
      row.raw.hidden = !showRaw;
      if (showRaw) row.raw.textContent = fmtNum(hit.raw, 6);
      const showRange = hit.min !== hit.max;
      row.range.hidden = !showRange;
      if (showRange) row.range.textContent = `${fmtNum(hit.min, 3)} … ${fmtNum(hit.max, 3)}`;
    });
    tip.hidden = false;
    // Placed by CSS alone (right of the cursor, or left of it past the middle), so moving
    // the mouse never makes the script wait for a layout to measure the tooltip.
    // Vertically, the cursor sits as far down the tooltip as it is down the chart, so a
    // tall tooltip (20 runs) grows away from the nearer edge instead of off the chart.
    // Horizontally it is clamped inside the chart by CSS too (`100%` in a translate is the
    // tooltip's own width), so on a narrow screen it never leaves the page.
    const x = Math.round(this.hover.px);
    const y = Math.round(Math.max(0, Math.min(this.hover.py, this.height)));
    const w = this.width;
    const left = x > w / 2 ? `calc(${x - 14}px - 100%)` : `${x + 14}px`;
    const down = Math.round((y / Math.max(1, this.height)) * 100);
    tip.style.transform = `translate(clamp(0px, ${left}, calc(${w}px - 100%)), ${y}px) translateY(-${down}%)`;
  }

  /** Where a point is, briefly (a tooltip row whose point is not under the crosshair). */
  _xShort(hit) {
    const mode = this.opts.xMode;
    if (mode === "wall") return fmtClock(hit.time, 1);
    if (mode === "relative") return fmtDuration(hit.x);
    return `step ${fmtNum(hit.step)}`;
  }

  /** The tooltip's rows, made once per series count and reused (only their text changes
   * on a move: with 20 runs, 40 strings instead of 100 new nodes). Built when data
   * arrives, so the first hover does not pay for it. */
  _tipBuild(n) {
    if (this._tipRows && this._tipRows.length === n) return;
    this._tipHead = h("div", { class: "tip-head" });
    this._tipRows = Array.from({ length: n }, () => {
      const row = {
        swatch: h("span", { class: "swatch" }),
        label: h("span", { class: "tip-label" }),
        value: h("span", { class: "tip-value" }),
        at: h("span", { class: "tip-at", hidden: true }),
        raw: h("span", { class: "tip-raw", hidden: true }),
        range: h("span", { class: "tip-range", hidden: true }),
      };
      row.el = h("div", { class: "tip-row" }, row.swatch, row.label, row.value, row.at, row.raw, row.range);
      return row;
    });
    this.tooltip.replaceChildren(this._tipHead, ...this._tipRows.map((r) => r.el));
  }

  // --- pointer ---

  _local(e) {
    const r = this.overlay.getBoundingClientRect();
    return { px: e.clientX - r.left, py: e.clientY - r.top };
  }

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

  _down(e) {
    if (e.button !== 0 || !this.plot) return;
    const p = this._local(e);
    if (p.px < this.plot.left || p.px > this.plot.right) return;
    this.overlay.setPointerCapture(e.pointerId);
    this.drag = { px0: p.px, px1: p.px };
  }

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

  /** A linked chart hovers at `x` (or stopped: null): draw a crosshair without a tooltip. */
  setLinkedX(x) {
    if (this.hover) return;
    this.linkedX = x;
    if (this.visible) this._scheduleOverlay();
    else this._setCrosshair(null);
  }
}

function lowerBound(xs, n, x) {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
