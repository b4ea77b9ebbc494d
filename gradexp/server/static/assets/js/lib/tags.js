// @ts-check
// Tags as a person types them in the run editor.

/**
 * Tags as typed ("a, b  c,,d") -> ["a", "b c", "d"]: commas separate, inner blanks fold to
 * one space, empty and repeated tags are dropped (the first one stays, in order).
 * @param {string} text
 * @returns {string[]}
 */
export function parseTags(text) {
  return [...new Set(text.split(",").map((t) => t.trim().replace(/\s+/g, " ")).filter(Boolean))];
}
