// @ts-check
// The UI's entry point: pick the page from the path, draw it, and keep the top bar.
//
// Pages are full page loads (plain links): the shell is tiny and the modules are cached
// for good, so there is no client-side router to keep in sync with the server's paths.

import { api, ApiError, shareToken, SIGNED_OUT_EVENT } from "./api.js";
import { h, replace } from "./dom.js";
import { showError } from "./layout.js";
import { mountProjects } from "./pages/projects.js";
import { mountRuns } from "./pages/runs.js";
import { mountRun, mountCompare } from "./pages/run.js";
import { mountGradients } from "./pages/gradients.js";
import { mountArtifacts } from "./pages/artifacts.js";
import { mountMembers, namespaceSwitcher } from "./teams.js";

/**
 * Each page's path pattern, and the page's mount function for a match of it.
 * @type {[RegExp, (m: RegExpMatchArray) => (el: HTMLElement) => Promise<void>][]}
 */
const ROUTES = [
  [/^\/$/, () => mountProjects],
  [/^\/p\/([^/]+)\/([^/]+)\/artifacts\/?$/, (m) => (el) => mountArtifacts(el, decodeURIComponent(m[1]), decodeURIComponent(m[2]))],
  [/^\/p\/([^/]+)\/([^/]+)\/?$/, (m) => (el) => mountRuns(el, decodeURIComponent(m[1]), decodeURIComponent(m[2]))],
  [/^\/r\/([^/]+)\/gradients\/?$/, (m) => (el) => mountGradients(el, decodeURIComponent(m[1]))],
  [/^\/r\/([^/]+)\/?$/, (m) => (el) => mountRun(el, decodeURIComponent(m[1]))],
  [/^\/compare\/?$/, () => mountCompare],
  [/^\/t\/([^/]+)\/?$/, (m) => (el) => mountMembers(el, decodeURIComponent(m[1]))],
  [/^\/s\/[A-Za-z0-9_-]{40,64}\/?$/, () => mountShared],
];

/**
 * A share link's page (`/s/TOKEN`): the shared run, or the compare view of the shared
 * runs, read-only; nothing else of the project is reachable from it.
 * @param {HTMLElement} el
 */
async function mountShared(el) {
  document.body.classList.add("shared");
  const { runs } = await api("/share");
  if (runs.length === 1) await mountRun(el, runs[0]);
  else await mountCompare(el, runs);
}

async function viewer() {
  const right = document.getElementById("topbar-right");
  if (!right) return;
  try {
    const me = await api("/viewer");
    // Signing out is a form post carrying the session's CSRF token (a script-readable cookie).
    const csrf = document.cookie
      .split("; ")
      .map((c) => c.split("="))
      .find(([k]) => k === "gradexp_csrf");
    replace(
      right,
      namespaceSwitcher(me),
      h("a", { class: "topbar-link", href: "/keys", text: "API keys" }),
      h("span", { class: "viewer", title: "Signed in", text: me.user.name }),
      csrf
        ? h(
            "form",
            { class: "signout", method: "post", action: "/logout" },
            h("input", { type: "hidden", name: "csrf", value: decodeURIComponent(csrf.slice(1).join("=")) }),
            h("button", { type: "submit", class: "topbar-link", text: "Sign out" }),
          )
        : null,
    );
  } catch {
    /* the page itself reports a missing session */
  }
}

async function main() {
  const params = new URLSearchParams(location.search);
  if (params.get("embed") === "1") document.body.classList.add("embed");
  const el = /** @type {HTMLElement} */ (document.getElementById("app"));
  // Embedded pages whose session ends while open: offer sign-in in a new tab (api.js).
  window.addEventListener(SIGNED_OUT_EVENT, () => showError(el, new ApiError(401, "unauthorized", "Your session has ended.")));
  const path = location.pathname;
  for (const [pattern, make] of ROUTES) {
    const m = path.match(pattern);
    if (!m) continue;
    try {
      await make(m)(el);
    } catch (err) {
      if (err && /** @type {Error} */ (err).name === "AbortError") return;
      console.error(err);
      showError(el, err);
    }
    break;
  }
  if (shareToken) {
    const right = document.getElementById("topbar-right");
    if (right) replace(right, h("span", { class: "shared-note", text: "Shared with you · read-only" }));
  } else if (!document.body.classList.contains("embed")) viewer();
}

main();
