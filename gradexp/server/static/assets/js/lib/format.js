// @ts-check
// Readable numbers, times and sizes. Everything returns plain strings.

import { isTyped } from "./values.js";

/** @type {[number, string][]} */
const SI = [
  [1e15, "P"],
  [1e12, "T"],
  [1e9, "G"],
  [1e6, "M"],
  [1e3, "k"],
];

/**
 * A value as a person wants to read it: 0.8312, 1.234e-5, 12.4k, NaN, ∞, "text".
 * @param {unknown} v
 * @returns {string}
 */
export function fmtValue(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "string") return v;
  if (typeof v === "number") return fmtNum(v);
  if (isTyped(v)) return typedLabel(v);
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

/** @param {import("./values.js").TypedValue} v */
function typedLabel(v) {
  if (v._type === "float") return v.value === "NaN" ? "NaN" : v.value === "Infinity" ? "∞" : "−∞";
  if (v._type === "histogram") return `histogram (${(v.counts || []).length} bins)`;
  if (v._type === "tensor") return `tensor ${fmtShape(v.shape)} ${v.dtype || ""}`.trim();
  if (v._type === "image") return `image ${v.width}×${v.height}`;
  return v._type;
}

/**
 * `[4, 16, 32]` -> `4×16×32`.
 * @param {unknown} shape
 */
export function fmtShape(shape) {
  return Array.isArray(shape) ? (shape.length ? shape.join("×") : "scalar") : "";
}

/**
 * NaN, ±∞ and 0, as every number format writes them; null for the rest.
 * @param {number} x
 */
function fmtSpecial(x) {
  if (Number.isNaN(x)) return "NaN";
  if (x === Infinity) return "∞";
  if (x === -Infinity) return "−∞";
  if (x === 0) return "0";
  return null;
}

/**
 * A number with about 4 significant digits; integers exact up to 1e6; SI above.
 * Anything else (null, a string, a typed value) is written as `fmtValue` writes it.
 * @param {unknown} x
 * @param {number} [digits]
 * @returns {string}
 */
export function fmtNum(x, digits = 4) {
  if (typeof x !== "number") return fmtValue(x);
  const special = fmtSpecial(x);
  if (special !== null) return special;
  const a = Math.abs(x);
  if (Number.isInteger(x) && a < 1e6) return x.toLocaleString("en-US");
  if (a >= 1e6 && a < 1e18) {
    for (const [scale, suffix] of SI) {
      if (a >= scale) return trimZeros((x / scale).toPrecision(digits)) + suffix;
    }
  }
  if (a < 1e-4 || a >= 1e18) return expo(x, digits - 1);
  // Thousands get separators like the integers ("5,253"); toPrecision would also switch
  // to "1.235e+4" past `digits` integer digits, so those are rounded instead.
  if (a >= 10 ** digits) return Math.round(x).toLocaleString("en-US");
  if (a >= 1000) return x.toLocaleString("en-US", { maximumSignificantDigits: digits });
  return trimZeros(x.toPrecision(digits));
}

/**
 * A number in at most about 7 characters, for small tiles and table cells: 3 significant
 * digits, an exponent below 1e-3 (`-1.23e-5`, never `-0.00…`), integers exact below 1e5,
 * SI suffixes for the rest from 1000 up (`1.44k`, `123k`, `4.5M`). Pair it with a `title` holding `fmtNum(x, 8)`.
 * @param {unknown} x
 * @returns {string}
 */
export function fmtCompact(x) {
  if (typeof x !== "number") return fmtValue(x);
  const special = fmtSpecial(x);
  if (special !== null) return special;
  const a = Math.abs(x);
  if (Number.isInteger(x) && a < 1e5) return String(x);
  if (a >= 1e3 && a < 1e18) {
    for (const [scale, suffix] of SI) {
      if (a >= scale) return trimZeros((x / scale).toPrecision(3)) + suffix;
    }
  }
  if (a < 1e-3 || a >= 1e18) return expo(x, 2);
  return trimZeros(x.toPrecision(3));
}

/**
 * @param {number} x
 * @param {number} digits
 */
function expo(x, digits) {
  const [mant, exp] = x.toExponential(digits).split("e");
  return trimZeros(mant) + "e" + exp.replace("+", "");
}

/** @param {string} s */
function trimZeros(s) {
  return s.includes(".") && !s.includes("e") ? s.replace(/\.?0+$/, "") : s;
}

/**
 * A compact axis label for value `v` on an axis whose ticks are `step` apart.
 * @param {number} v
 * @param {number} step
 * @returns {string}
 */
export function fmtTick(v, step) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4 && a < 1e18) {
    for (const [scale, suffix] of SI) {
      if (a >= scale) {
        const decimals = Math.max(0, Math.min(3, -Math.floor(Math.log10(step / scale) + 1e-9)));
        return trimZeros((v / scale).toFixed(decimals)) + suffix;
      }
    }
  }
  if (step < 1e-4 || a >= 1e18) return expo(v, Math.max(0, Math.min(3, Math.round(Math.log10(a / step)))));
  const decimals = Math.max(0, Math.min(10, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(decimals);
}

/**
 * Seconds as a duration: 0.42s, 4.2s, 42s, 3m 05s, 2h 14m, 3d 4h.
 * @param {number | null | undefined} seconds
 * @returns {string}
 */
export function fmtDuration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "—";
  if (seconds < 10) return `${Math.max(0, seconds).toFixed(seconds < 1 ? 2 : 1)}s`;
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(hrs / 24)}d ${hrs % 24}h`;
}

/** @param {number} n */
const pad = (n) => String(n).padStart(2, "0");

/**
 * A Unix time as local `2026-11-26 14:03`.
 * @param {number | null | undefined} ts
 * @returns {string}
 */
export function fmtDateTime(ts) {
  if (typeof ts !== "number" || !Number.isFinite(ts)) return "—";
  const d = new Date(ts * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/**
 * A Unix time relative to now: `just now`, `5 min ago`, `3 h ago`, else the date.
 * @param {number | null | undefined} ts
 * @param {number} [now] Unix time
 * @returns {string}
 */
export function fmtAgo(ts, now = Date.now() / 1000) {
  if (typeof ts !== "number" || !Number.isFinite(ts)) return "—";
  const d = now - ts;
  if (d < 45) return "just now";
  if (d < 3600) return `${Math.round(d / 60)} min ago`;
  if (d < 86400) return `${Math.round(d / 3600)} h ago`;
  if (d < 7 * 86400) return `${Math.round(d / 86400)} d ago`;
  return fmtDateTime(ts).slice(0, 10);
}

/**
 * Bytes as `812 B`, `1.4 MB`.
 * @param {number | null | undefined} n
 * @returns {string}
 */
export function fmtBytes(n) {
  if (typeof n !== "number" || !Number.isFinite(n)) return "—";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toPrecision(3)} ${units[i]}`;
}

/**
 * A clock time for a time axis whose ticks are `step` seconds apart.
 * @param {number} ts Unix time
 * @param {number} step
 * @returns {string}
 */
export function fmtClock(ts, step) {
  const d = new Date(ts * 1000);
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (step < 1) return `${pad(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, "0").slice(0, step < 0.01 ? 3 : step < 0.1 ? 2 : 1)}`;
  if (step >= 86400) return `${d.getMonth() + 1}/${d.getDate()}`;
  if (step >= 60) return hm;
  return `${hm}:${pad(d.getSeconds())}`;
}

/**
 * A duration for a relative-time axis: 0, 30s, 2m, 1h30m.
 * @param {number} seconds
 * @param {number} step
 * @returns {string}
 */
export function fmtRelTick(seconds, step) {
  if (step < 1) return `${seconds.toFixed(Math.min(3, Math.ceil(-Math.log10(step) - 1e-9)))}s`;
  const s = Math.round(seconds);
  if (s === 0) return "0";
  const sign = s < 0 ? "−" : "";
  const a = Math.abs(s);
  if (step < 60) return sign + (a >= 60 ? `${Math.floor(a / 60)}m${pad(a % 60)}s` : `${a}s`);
  if (step < 3600) return sign + (a >= 3600 ? `${Math.floor(a / 3600)}h${pad(Math.floor(a / 60) % 60)}` : `${Math.floor(a / 60)}m`);
  if (step < 86400) return sign + `${Math.floor(a / 3600)}h` + (a % 3600 ? pad(Math.floor((a % 3600) / 60)) : "");
  return sign + `${Math.floor(a / 86400)}d` + (a % 86400 ? `${Math.floor((a % 86400) / 3600)}h` : "");
}
