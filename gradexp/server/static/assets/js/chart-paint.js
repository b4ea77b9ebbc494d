// @ts-check
// What the chart paints. On its base canvas: axes and grid, min/max bands, lines, lonely
// points and the marks of non-finite values; on its overlay: the drag selection, the
// crosshair and the hovered points. Functions of a 2-D context and a `Plot` (the mapping
// from data to CSS pixels); the chart decides when to call them.

import { lowerBound } from "./lib/series.js";

/** @typedef {import("./lib/series.js").Series} Series */
/** @typedef {import("./chart-tooltip.js").Hit} Hit */

/**
 * Where the plot area is on the canvas (CSS pixels) and how data maps onto it.
 * @typedef {object} Plot
 * @property {number} left
 * @property {number} top
 * @property {number} right
 * @property {number} bottom
 * @property {number} w
 * @property {number} h
 * @property {{x0: number, x1: number, y0: number, y1: number}} d the data shown
 * @property {(x: number) => number} px data x to pixel x
 * @property {(y: number) => number} py data y to pixel y (log10 on a log axis)
 * @property {(px: number) => number} xAt pixel x to data x
 */

/**
 * Grid lines with the y labels left of the plot and the x labels under it; x labels that
 * would overlap their left neighbour (or leave the canvas) are skipped.
 * @param {CanvasRenderingContext2D} ctx
 * @param {Plot} plot
 * @param {number} width the canvas' CSS width
 * @param {number[]} yTicks
 * @param {string[]} yLabels
 * @param {number[]} xTicks
 * @param {(v: number) => string} xLabel
 * @param {{grid: string, axis: string}} colors
 */
export function paintAxes(ctx, plot, width, yTicks, yLabels, xTicks, xLabel, colors) {
  ctx.lineWidth = 1;
  ctx.strokeStyle = colors.grid;
  ctx.fillStyle = colors.axis;
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
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  let lastRight = -Infinity;
  for (const v of xTicks) {
    const x = Math.round(plot.px(v)) + 0.5;
    if (x < plot.left - 1 || x > plot.right + 1) continue;
    ctx.moveTo(x, plot.top);
    ctx.lineTo(x, plot.bottom);
    const label = xLabel(v);
    const w = ctx.measureText(label).width;
    if (x - w / 2 > lastRight + 6 && x + w / 2 <= width) {
      ctx.fillText(label, x, plot.bottom + 5);
      lastRight = x + w / 2;
    }
  }
  ctx.stroke();
}

/**
 * The min/max band of a series (only when some bucket holds more than one value), in
 * stretches of at least two points whose min and max are finite (and positive on a log
 * axis).
 * @param {CanvasRenderingContext2D} ctx
 * @param {Series} s
 * @param {ArrayLike<number>} xs the series' x values in the chart's mode
 * @param {Plot} plot
 * @param {boolean} logY
 */
export function paintBand(ctx, s, xs, plot, logY) {
  const n = s.n;
  if (n < 2) return;
  const { x0, x1 } = plot.d;
  /** @param {number} i */
  const ok = (i) => {
    const a = s.min[i];
    const b = s.max[i];
    return a - a === 0 && b - b === 0 && (!logY || a > 0);
  };
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

/**
 * A series' line through `ys`, broken at non-finite values (and values <= 0 on a log
 * axis); a finite point with no finite neighbour is drawn as a dot.
 * @param {CanvasRenderingContext2D} ctx
 * @param {Series} s
 * @param {ArrayLike<number>} xs
 * @param {ArrayLike<number>} ys the values drawn (raw or smoothed)
 * @param {Plot} plot
 * @param {number} width line width
 * @param {boolean} logY
 */
export function paintLine(ctx, s, xs, ys, plot, width, logY) {
  const n = s.n;
  if (!n) return;
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
      if (run === 1) paintDot(ctx, plot, xs[lonely], ys[lonely], s.color);
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
  if (run === 1) paintDot(ctx, plot, xs[lonely], ys[lonely], s.color);
}

/**
 * A point alone (no neighbour to draw a line to).
 * @param {CanvasRenderingContext2D} ctx
 * @param {Plot} plot
 * @param {number} x
 * @param {number} y
 * @param {string} color
 */
function paintDot(ctx, plot, x, y, color) {
  ctx.save();
  ctx.fillStyle = color;
  ctx.beginPath();
  ctx.arc(plot.px(x), plot.py(y), 2.5, 0, Math.PI * 2);
  ctx.fill();
  ctx.restore();
}

/**
 * A small triangle at the plot's top edge for each NaN and +inf of a series, at the bottom
 * edge for each -inf (at most 2000), so a NaN is never silently invisible.
 * @param {CanvasRenderingContext2D} ctx
 * @param {Series} s
 * @param {ArrayLike<number>} xs
 * @param {Plot} plot
 */
export function paintNonFinite(ctx, s, xs, plot) {
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

/**
 * The range being selected by a drag (between two pixel x's, clamped to the plot).
 * @param {CanvasRenderingContext2D} ctx
 * @param {Plot} plot
 * @param {number} px0
 * @param {number} px1
 */
export function paintSelection(ctx, plot, px0, px1) {
  const a = Math.max(plot.left, Math.min(px0, px1));
  const b = Math.min(plot.right, Math.max(px0, px1));
  ctx.fillStyle = "rgba(37, 99, 235, 0.10)";
  ctx.fillRect(a, plot.top, b - a, plot.h);
  ctx.strokeStyle = "rgba(37, 99, 235, 0.55)";
  ctx.lineWidth = 1;
  ctx.strokeRect(Math.round(a) + 0.5, plot.top + 0.5, Math.round(b - a), plot.h - 1);
}

/**
 * A dashed vertical crosshair at data x, and a ring on each hit that is drawable and
 * inside the plot.
 * @param {CanvasRenderingContext2D} ctx
 * @param {Plot} plot
 * @param {number} x
 * @param {Hit[]} hits
 * @param {boolean} logY
 */
export function paintCrosshair(ctx, plot, x, hits, logY) {
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
    if (y - y !== 0 || (logY && y <= 0)) continue;
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
}
