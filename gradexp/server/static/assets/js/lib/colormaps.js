// @ts-check
// Colour maps for heatmaps (tensor slices, gradient distributions) and the scale that
// maps a value onto one.

/**
 * Control points of a colour map: position in [0, 1], then r, g, b.
 * @typedef {[number, number, number, number][]} Stops
 */

/** @type {Record<string, Stops>} */
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

/** @type {Map<string, Uint8Array>} */
const lutCache = new Map();

/**
 * A colour map as a 256x3 Uint8Array (r, g, b per entry), interpolated between its
 * control points; an unknown name gives the sequential map.
 * @param {string} name "density", "diverging" or "sequential"
 * @returns {Uint8Array}
 */
export function lut(name) {
  const cached = lutCache.get(name);
  if (cached) return cached;
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

/**
 * A CSS colour for t in [0, 1] (clamped) on a map (legends).
 * @param {string} name
 * @param {number} t
 * @returns {string}
 */
export function cssColor(name, t) {
  const table = lut(name);
  const i = Math.max(0, Math.min(255, Math.round(t * 255))) * 3;
  return `rgb(${table[i]}, ${table[i + 1]}, ${table[i + 2]})`;
}

/**
 * A colour scale: the map's name, the values at its ends, and the map index (0..255)
 * of a value, or -1 for a value with no colour (NaN, ±inf).
 * @typedef {{name: string, lo: number, hi: number, index: (v: number) => number}} ValueScale
 */

/**
 * A colour scale for values in [lo, hi]: diverging around 0 (symmetric) when the data has
 * both signs, sequential otherwise.
 * @param {number} lo
 * @param {number} hi
 * @returns {ValueScale}
 */
export function valueScale(lo, hi) {
  if (!(hi >= lo)) return { name: "sequential", index: () => -1, lo: 0, hi: 1 };
  if (lo < 0 && hi > 0) {
    const m = Math.max(-lo, hi);
    return { name: "diverging", lo: -m, hi: m, index: (v) => (v - v !== 0 ? -1 : Math.max(0, Math.min(255, Math.round(((v / m + 1) / 2) * 255)))) };
  }
  const span = hi - lo || 1;
  return { name: "sequential", lo, hi, index: (v) => (v - v !== 0 ? -1 : Math.max(0, Math.min(255, Math.round(((v - lo) / span) * 255)))) };
}
