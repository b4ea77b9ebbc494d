// @ts-check
// The colours of runs, in charts, legends and the runs table.

/** Run colours: distinct, readable on white, colour-blind friendlier first. */
export const PALETTE = [
  "#2563eb", "#e8590c", "#0f9d58", "#c2255c", "#7048e8", "#0c8599", "#d6336c", "#5c940d",
  "#1864ab", "#a61e4d", "#e67700", "#2b8a3e", "#862e9c", "#087f5b", "#364fc7", "#c92a2a",
  "#74b816", "#495057", "#f08c00", "#1098ad",
];

/**
 * The colour of the i-th run (any integer: the palette repeats, negatives included).
 * @param {number} i
 * @returns {string}
 */
export const colorFor = (i) => PALETTE[((i % PALETTE.length) + PALETTE.length) % PALETTE.length];
