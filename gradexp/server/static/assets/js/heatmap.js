// @ts-check
// Heatmaps on canvas: sizing a canvas for the screen, painting a grid of values through a
// colour map, and a colour bar. Used by the tensor slice view and the gradient explorer;
// the colour maps themselves are in `lib/colormaps.js`, the histogram arithmetic in
// `lib/histogram.js`.

import { cssColor } from "./lib/colormaps.js";

/**
 * Size a canvas to its CSS box in device pixels; returns {ctx, w, h} in CSS pixels.
 * @param {HTMLCanvasElement} canvas
 * @param {number} cssW
 * @param {number} cssH
 * @returns {{ctx: CanvasRenderingContext2D, w: number, h: number}}
 */
export function fitCanvas(canvas, cssW, cssH) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(cssW * dpr));
  canvas.height = Math.max(1, Math.round(cssH * dpr));
  canvas.style.width = cssW + "px";
  canvas.style.height = cssH + "px";
  const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { ctx, w: cssW, h: cssH };
}

/**
 * Paint a rows x cols grid of values (row-major) into ctx at (x, y, w, h).
 * `color(v)` returns an index 0..255 into the table, or -1 for a special colour (`special`).
 * @param {CanvasRenderingContext2D} ctx
 * @param {number} rows
 * @param {number} cols
 * @param {ArrayLike<number>} values
 * @param {(v: number) => number} color
 * @param {Uint8Array} table a colour map (`lut`)
 * @param {{x: number, y: number, w: number, h: number}} rect
 * @param {[number, number, number]} [special] r, g, b
 */
export function paintGrid(ctx, rows, cols, values, color, table, rect, special = [236, 72, 153]) {
  const img = new ImageData(cols, rows);
  const px = img.data;
  for (let i = 0; i < rows * cols; i++) {
    const c = color(values[i]);
    const o = i * 4;
    if (c < 0) {
      px[o] = special[0];
      px[o + 1] = special[1];
      px[o + 2] = special[2];
    } else {
      px[o] = table[c * 3];
      px[o + 1] = table[c * 3 + 1];
      px[o + 2] = table[c * 3 + 2];
    }
    px[o + 3] = 255;
  }
  const off = document.createElement("canvas");
  off.width = cols;
  off.height = rows;
  /** @type {CanvasRenderingContext2D} */ (off.getContext("2d")).putImageData(img, 0, 0);
  ctx.save();
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, rect.x, rect.y, rect.w, rect.h);
  ctx.restore();
}

/**
 * A horizontal colour bar of a map, `cssW` pixels wide.
 * @param {HTMLCanvasElement} canvas
 * @param {string} name
 * @param {number} cssW
 * @param {number} [cssH]
 */
export function colorBar(canvas, name, cssW, cssH = 10) {
  const { ctx, w, h } = fitCanvas(canvas, cssW, cssH);
  for (let x = 0; x < w; x++) {
    ctx.fillStyle = cssColor(name, x / Math.max(1, w - 1));
    ctx.fillRect(x, 0, 1, h);
  }
}
