// @ts-check
// Values as the API sends them, made into JavaScript numbers. The wire protocol writes
// NaN and ±inf as typed values ({"_type": "float", "value": "NaN"}), because JSON has no
// spelling for them; histograms, tensors and images are typed values too.

/**
 * A typed value from the API: a non-finite float, a histogram, a tensor, an image.
 * @typedef {{_type: string, [field: string]: any}} TypedValue
 */

/** @type {Record<string, number>} */
const NONFINITE = { NaN: NaN, Infinity: Infinity, "-Infinity": -Infinity };

/**
 * True for a typed value (an object with a `_type`).
 * @param {unknown} v
 * @returns {v is TypedValue}
 */
export function isTyped(v) {
  return v !== null && typeof v === "object" && Boolean(/** @type {{_type?: unknown}} */ (v)._type);
}

/**
 * True for a protocol-encoded non-finite float (its `value` names it: "NaN", "Infinity"...).
 * @param {unknown} v
 * @returns {v is {_type: "float", value: string}}
 */
function isFloat(v) {
  return v !== null && typeof v === "object" && /** @type {{_type?: unknown}} */ (v)._type === "float";
}

/**
 * A number for charting, or null (strings, typed values). Booleans chart as 0/1.
 * @param {unknown} v
 * @returns {number | null}
 */
export function numeric(v) {
  if (typeof v === "number") return v;
  if (typeof v === "boolean") return v ? 1 : 0;
  if (isFloat(v)) return NONFINITE[v.value] ?? NaN;
  return null;
}
