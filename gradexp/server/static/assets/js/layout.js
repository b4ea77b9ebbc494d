// @ts-check
// Page furniture shared by every page: the breadcrumb trail and page-level errors.

import { ApiError, embedded, signInUrl } from "./api.js";
import { h, replace, emptyState } from "./dom.js";

/**
 * Set the breadcrumb trail: [{text, href?}, ...].
 * @param {{text: string, href?: string}[]} items
 */
export function setCrumbs(items) {
  const nav = document.getElementById("crumbs");
  if (!nav) return;
  /** @type {HTMLElement[]} */
  const parts = [];
  items.forEach((item, i) => {
    if (i) parts.push(h("span", { class: "crumb-sep", text: "/" }));
    parts.push(item.href ? h("a", { href: item.href, text: item.text }) : h("span", { class: "crumb-here", text: item.text }));
  });
  replace(nav, ...parts);
  if (items.length) document.title = `${items[items.length - 1].text} · gradexp`;
}

/**
 * A page-level error, readable, with what to do next.
 * @param {HTMLElement} el
 * @param {unknown} err
 */
export function showError(el, err) {
  if (err instanceof ApiError && err.status === 401) {
    if (embedded) {
      const reload = h("button", { type: "button", class: "button", text: "Reload", on: { click: () => location.reload() } });
      const link = h("a", { class: "button primary", href: signInUrl(), target: "_blank", rel: "noopener", text: "Sign in (new tab)" });
      replace(el, emptyState("Sign in to gradexp", "Sign in in a new tab, then reload this view.", h("div", { class: "actions" }, link, reload)));
      return;
    }
    replace(el, emptyState("Signed out", "Sign in to see your runs.", h("a", { class: "button primary", href: signInUrl(), text: "Sign in" })));
    return;
  }
  const title = err instanceof ApiError && err.status === 404 ? "Not found" : "Something went wrong";
  const message = err && /** @type {Error} */ (err).message ? /** @type {Error} */ (err).message : String(err);
  replace(el, emptyState(title, message, h("a", { class: "button", href: "/", text: "All projects" })));
}

