// @ts-check
// Building DOM safely. Every piece of data reaches the page as a text node or an
// attribute value set through the DOM API: nothing here (or anywhere in the UI) assigns
// innerHTML, so a run named `<img src=x onerror=alert(1)>` can only ever show as text.

/**
 * An element's properties for `h`: class (a string, or an array whose empty entries are
 * skipped), text, dataset, style (set through CSSOM, which the CSP allows; `--x` custom
 * properties too), on (event listeners), and any other key as an attribute (or as a
 * property for `value`, `checked`, `disabled`, `hidden`, `selected`, `indeterminate`).
 * null, undefined and false values are skipped.
 * @typedef {{
 *   class?: string | (string | null | undefined | false)[] | null,
 *   text?: string | number | null,
 *   dataset?: Record<string, string | number>,
 *   style?: Record<string, string | number>,
 *   on?: Record<string, (event: any) => unknown>,
 *   [attribute: string]: unknown,
 * }} Props
 */

/**
 * What `h` and `append` take as children: nodes, strings (text nodes), numbers, arrays of
 * children; null, undefined and false are skipped.
 * @typedef {Node | string | number | boolean | null | undefined | ChildList} Child
 * @typedef {Child[]} ChildList
 */

/**
 * Create an element: h("a", {class: "x", href: url, on: {click: fn}}, "text", child...).
 * Props: see `Props`. Children: see `Child`. A tag "svg:name" makes an SVG element.
 * @template {string} K
 * @param {K} tag
 * @param {Props | null} [props]
 * @param {...Child} children
 * @returns {K extends keyof HTMLElementTagNameMap ? HTMLElementTagNameMap[K] : HTMLElement}
 */
export function h(tag, props, ...children) {
  const el = tag.includes(":") ? svg(tag.slice(4)) : document.createElement(tag);
  if (props) applyProps(el, props);
  append(el, children);
  return /** @type {any} */ (el);
}

const SVG_NS = "http://www.w3.org/2000/svg";
/** @param {string} tag */
function svg(tag) {
  return document.createElementNS(SVG_NS, tag);
}

const PROPERTIES = new Set(["value", "checked", "disabled", "hidden", "selected", "indeterminate"]);

/**
 * @param {Element} el an HTML element, or an SVG element (which has `dataset` and `style` too)
 * @param {Props} props
 */
function applyProps(el, props) {
  const html = /** @type {HTMLElement} */ (el);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") {
      const names = Array.isArray(value) ? value.filter(Boolean) : String(value).split(/\s+/).filter(Boolean);
      el.classList.add(...names);
    } else if (key === "text") {
      el.textContent = String(value);
    } else if (key === "dataset") {
      for (const [k, v] of Object.entries(/** @type {Record<string, unknown>} */ (value))) html.dataset[k] = String(v);
    } else if (key === "style") {
      for (const [k, v] of Object.entries(/** @type {Record<string, unknown>} */ (value))) {
        if (k.startsWith("--")) html.style.setProperty(k, String(v));
        else /** @type {any} */ (html.style)[k] = v;
      }
    } else if (key === "on") {
      for (const [event, fn] of Object.entries(/** @type {Record<string, EventListener>} */ (value))) el.addEventListener(event, fn);
    } else if (PROPERTIES.has(key)) {
      /** @type {any} */ (el)[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

/**
 * Append children (see `h`) to an element.
 * @template {Element} E
 * @param {E} el
 * @param {Child[]} children
 * @returns {E}
 */
export function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
  return el;
}

/**
 * A key as nodes that may wrap after its separators (`optimizer.` `weight_` `decay`),
 * never inside a word: text nodes with <wbr> after each ".", "/" and "_".
 * @param {string} text
 * @returns {Child[]}
 */
export function breakable(text) {
  const parts = String(text).split(/(?<=[./_])/);
  /** @type {Child[]} */
  const out = [];
  parts.forEach((part, i) => {
    if (i) out.push(h("wbr"));
    out.push(part);
  });
  return out;
}

/**
 * Remove every child of an element.
 * @template {Element} E
 * @param {E} el
 * @returns {E}
 */
export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/**
 * Replace an element's children.
 * @template {Element} E
 * @param {E} el
 * @param {...Child} children
 * @returns {E}
 */
export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

/**
 * Paths of the icons, in a 24x24 box.
 * @type {Record<string, string>}
 */
const ICONS = {
  chevron: "M6 9l6 6 6-6",
  search: "M11 19a8 8 0 1 1 0-16 8 8 0 0 1 0 16zm10 2-4.35-4.35",
  reset: "M3 12a9 9 0 1 0 3-6.7L3 8m0-5v5h5",
  log: "M4 20V4m0 16h16M8 16c3-1 4-9 12-11",
  download: "M12 3v12m0 0-4-4m4 4 4-4M4 19h16",
  columns: "M4 4h16v16H4zM10 4v16M16 4v16",
  external: "M14 4h6v6m0-6L10 14M18 14v6H4V6h6",
  compare: "M4 18l5-6 4 3 7-9M4 8l5 3 4-2 7 4",
  close: "M6 6l12 12M18 6 6 18",
  grid: "M4 4h7v7H4zM13 4h7v7h-7zM4 13h7v7H4zM13 13h7v7h-7z",
  expand: "M4 9V4h5M20 9V4h-5M4 15v5h5M20 15v5h-5",
  edit: "M4 20h4L19 9l-4-4L4 16zM14 6l4 4",
  trash: "M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13",
};

/**
 * A small inline SVG icon from a fixed set of paths (no data involved).
 * @param {string} name
 * @param {number} [size] CSS pixels
 * @returns {SVGElement}
 */
export function icon(name, size = 16) {
  const el = /** @type {SVGElement} */ (svg("svg"));
  el.setAttribute("viewBox", "0 0 24 24");
  el.setAttribute("width", String(size));
  el.setAttribute("height", String(size));
  el.setAttribute("aria-hidden", "true");
  el.setAttribute("class", "icon");
  const path = svg("path");
  path.setAttribute("d", ICONS[name] || "");
  el.appendChild(path);
  return el;
}

/**
 * Debounce a function (trailing edge).
 * @template {unknown[]} A
 * @param {(...args: A) => unknown} fn
 * @param {number} ms
 * @returns {(...args: A) => void}
 */
export function debounce(fn, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Persisted UI preferences (localStorage, JSON), never trusted beyond their type. */
export const prefs = {
  /**
   * The value stored under `key`, or `fallback` when there is none, it is unreadable, or it
   * is not of the fallback's type (any value when the fallback is null).
   * @template T
   * @param {string} key
   * @param {T} fallback
   * @returns {T}
   */
  get(key, fallback) {
    try {
      const raw = localStorage.getItem("gradexp:" + key);
      if (raw === null) return fallback;
      const value = JSON.parse(raw);
      return typeof value === typeof fallback || fallback === null ? value : fallback;
    } catch {
      return fallback;
    }
  },
  /**
   * @param {string} key
   * @param {unknown} value
   */
  set(key, value) {
    try {
      localStorage.setItem("gradexp:" + key, JSON.stringify(value));
    } catch {
      /* storage full or disabled: preferences are a convenience */
    }
  },
};

/**
 * An empty-state block: a title, a line of help and optional extra nodes.
 * @param {string} title
 * @param {string | null} [help]
 * @param {...Child} extra
 */
export function emptyState(title, help, ...extra) {
  return h("div", { class: "empty" }, h("div", { class: "empty-title", text: title }), help ? h("p", { text: help }) : null, ...extra);
}

/**
 * A state badge: running (with a live dot), finished, failed, crashed.
 * @param {string | null | undefined} state
 */
export function stateBadge(state) {
  const s = String(state || "unknown");
  return h("span", { class: ["badge", "state-" + s.replace(/[^a-z]/g, "")], title: STATE_HELP[s] || s }, s === "running" ? h("span", { class: "pulse" }) : null, s);
}

/** @type {Record<string, string>} */
const STATE_HELP = {
  running: "The run is sending data.",
  finished: "The run finished (exit code 0).",
  failed: "The run finished with a non-zero exit code.",
  crashed: "No heartbeat for a while: the process probably died.",
};
