// Heatmaps and histograms on canvas: colour maps, matrix drawing, histogram resampling and
// percentiles. Used by the tensor slice view and the gradient explorer.

// Colour maps as control points (position, r, g, b), interpolated into 256-entry tables.
const MAPS = {
  // light to deep blue: densities (zero is the page's background)
  density: [
    [0, 248, 250, 252],
    [0.15, 207, 226, 243],
    [0.4, 120, 170, 220],
    [0.7, 37, 99, 235],
    [1, 23, 37, 84],
  ],
  // blue - white - red, for signed values centred on zero
  diverging: [
    [0, 33, 72, 145],
    [0.25, 103, 150, 205],
    [0.5, 247, 247, 247],
    [0.75, 222, 119, 96],
    [1, 160, 28, 42],
  ],
  // dark to bright, for values of one sign
  sequential: [
    [0, 30, 27, 75],
    [0.3, 44, 105, 154],
    [0.6, 36, 170, 131],
    [0.85, 180, 215, 70],
    [1, 250, 235, 150],
  ],
};

const lutCache = new Map();

/** A 256x3 Uint8Array colour table. */
export function lut(name) {
  if (lutCache.has(name)) return lutCache.get(name);
  const stops = MAPS[name] || MAPS.sequential;
  const out = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    let k = 1;
    while (k < stops.length - 1 && stops[k][0] < t) k++;
    const [t0, r0, g0, b0] = stops[k - 1];
    const [t1, r1, g1, b1] = stops[k];
    const f = t1 > t0 ? Math.min(1, Math.max(0, (t - t0) / (t1 - t0))) : 0;
    out[i * 3] = Math.round(r0 + (r1 - r0) * f);
    out[i * 3 + 1] = Math.round(g0 + (g1 - g0) * f);
    out[i * 3 + 2] = Math.round(b0 + (b1 - b0) * f);
  }
  lutCache.set(name, out);
  return out;
}

/** A CSS colour for t in [0, 1] on a map (legends). */
export function cssColor(name, t) {
  const table = lut(name);
  const i = Math.max(0, Math.min(255, Math.round(t * 255))) * 3;
  return `rgb(${table[i]}, ${table[i + 1]}, ${table[i + 2]})`;
}

/** Size a canvas to its CSS box in device pixels; returns {ctx, w, h} in CSS pixels. */
export function fitCanvas(canvas, cssW, cssH) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(cssW * dpr));
  canvas.height = Math.max(1, Math.round(cssH * dpr));
  canvas.style.width = cssW + "px";
  canvas.style.height = cssH + "px";
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { ctx, w: cssW, h: cssH };
}

/**
 * Paint a rows x cols grid of values (row-major) into ctx at (x, y, w, h).
 * `color(v)` returns an index 0..255 into the table, or -1 for a special colour (`special`).
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
  off.getContext("2d").putImageData(img, 0, 0);
  ctx.save();
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, rect.x, rect.y, rect.w, rect.h);
  ctx.restore();
}

/** A colour scale for values in [lo, hi]: diverging around 0 when the data has both signs. */
export function valueScale(lo, hi) {
  if (!(hi >= lo)) return { name: "sequential", index: () => -1, lo: 0, hi: 1 };
  if (lo < 0 && hi > 0) {
    const m = Math.max(-lo, hi);
    return { name: "diverging", lo: -m, hi: m, index: (v) => (v - v !== 0 ? -1 : Math.max(0, Math.min(255, Math.round(((v / m + 1) / 2) * 255)))) };
  }
  const span = hi - lo || 1;
  return { name: "sequential", lo, hi, index: (v) => (v - v !== 0 ? -1 : Math.max(0, Math.min(255, Math.round(((v - lo) / span) * 255)))) };
}

/**
 * Spread a histogram (edges, counts) onto a fixed grid of `cells` equal cells over
 * [lo, hi], by overlap: each bin's count is shared among the cells it covers. Histograms
 * logged at different steps have different edges; this puts them on one axis.
 */
export function resample(edges, counts, lo, hi, cells, out) {
  const res = out || new Float64Array(cells);
  res.fill(0);
  const width = (hi - lo) / cells;
  if (!(width > 0)) return res;
  for (let b = 0; b < counts.length; b++) {
    const c = counts[b];
    if (!c) continue;
    const a = edges[b];
    const z = edges[b + 1];
    if (!(z >= a)) continue;
    if (z === a) {
      const k = Math.min(cells - 1, Math.max(0, Math.floor((a - lo) / width)));
      res[k] += c;
      continue;
    }
    const k0 = Math.max(0, Math.floor((a - lo) / width));
    const k1 = Math.min(cells - 1, Math.floor((z - lo) / width));
    for (let k = k0; k <= k1; k++) {
      const c0 = lo + k * width;
      const overlap = Math.min(z, c0 + width) - Math.max(a, c0);
      if (overlap > 0) res[k] += (c * overlap) / (z - a);
    }
  }
  return res;
}

/** Percentiles (q in [0, 1]) of a histogram, interpolating linearly inside bins. */
export function percentiles(edges, counts, qs) {
  let total = 0;
  for (const c of counts) total += c;
  if (!total) return qs.map(() => NaN);
  const out = [];
  for (const q of qs) {
    const target = q * total;
    let acc = 0;
    let value = edges[edges.length - 1];
    for (let b = 0; b < counts.length; b++) {
      const c = counts[b];
      if (acc + c >= target && c > 0) {
        const f = (target - acc) / c;
        value = edges[b] + f * (edges[b + 1] - edges[b]);
        break;
      }
      acc += c;
    }
    out.push(value);
  }
  return out;
}

/** A horizontal colour bar with end labels. */
export function colorBar(canvas, name, cssW, cssH = 10) {
  const { ctx, w, h } = fitCanvas(canvas, cssW, cssH);
  for (let x = 0; x < w; x++) {
    ctx.fillStyle = cssColor(name, x / Math.max(1, w - 1));
    ctx.fillRect(x, 0, 1, h);
  }
}
