// @ts-check
// The header every run page shares (the run page and its gradient explorer): name,
// state, facts, and the tab bar.

import { qs, seg, shareToken } from "./api.js";
import { h, icon, replace, stateBadge } from "./dom.js";
import { fmtAgo, fmtDateTime, fmtDuration, fmtNum } from "./lib/format.js";
import { runDuration } from "./lib/runs.js";
import { runEditor } from "./run-edit.js";

/**
 * The header of a run's pages. `active` names the current tab ("charts", "overview",
 * "system", "logs", "files", "media", "gradients"); the media and gradients tabs show only when the run has them.
 * `update(run)` redraws the state and facts (live runs).
 * `alerts` (optional): how many alerts the run sent; a count links to the overview.
 * @param {any} run the run, as the API sends it
 * @param {string} active
 * @param {{hasMedia: boolean, hasGradients: boolean, alerts?: number}} has
 * @returns {{el: HTMLElement, tabs: HTMLElement, update: (run: any) => void, setAlerts: (n: number) => void}}
 */
export function runHeader(run, active, { hasMedia, hasGradients, alerts = 0 }) {
  // A shared page (`/s/TOKEN`) keeps its own address: its tabs are anchors on it.
  const base = shareToken ? location.pathname : `/r/${seg(run.id)}`;
  /** @param {string} href */
  const projectLink = (href) => (shareToken ? null : href);
  /**
   * @param {string} id
   * @param {string} label
   * @param {string} href
   */
  const tab = (id, label, href) => h("a", { class: ["tab", active === id ? "active" : null], href, "aria-current": active === id ? "page" : null, text: label });
  const badge = h("span", { class: "state-slot" }, stateBadge(run.state));
  const alertSlot = h("span", { class: "alert-slot" });
  /** @param {number} n */
  const setAlerts = (n) => replace(alertSlot, n > 0 ? h("a", { class: "alert-pill", href: base + "#overview", title: "Alerts this run sent (gradexp.alert)", text: `${n} alert${n === 1 ? "" : "s"}` }) : null);
  setAlerts(alerts);
  const facts = h("div", { class: "facts" });
  /** @param {any} r */
  const fillFacts = (r) => {
    replace(
      facts,
      h("span", { title: fmtDateTime(r.started_at) }, "Started ", h("b", { text: fmtAgo(r.started_at) })),
      h("span", {}, "Duration ", h("b", { text: fmtDuration(runDuration(r)) })),
      h("span", {}, "Step ", h("b", { text: r.last_step >= 0 ? fmtNum(r.last_step) : "—" })),
      r.host && r.host.hostname ? h("span", {}, "Host ", h("b", { text: r.host.hostname })) : null,
      r.job_type ? h("span", {}, "Job ", h("b", { text: r.job_type })) : null,
      r.group ? h("span", {}, "Group ", h("a", { href: projectLink(`/p/${seg(r.owner)}/${seg(r.project)}${qs({ group: r.group })}`), title: `Runs of group ${r.group}`, text: r.group })) : null,
      r.exit_code !== null && r.exit_code !== undefined ? h("span", {}, "Exit code ", h("b", { text: String(r.exit_code) })) : null,
      // Labelled like the other facts, so a tag (say, "live") never reads as a status.
      (r.tags || []).length ? h("span", { class: "tags" }, "Tags ", r.tags.map((/** @type {string} */ t) => h("a", { class: "tag", href: projectLink(`/p/${seg(r.owner)}/${seg(r.project)}${qs({ tag: t })}`), title: `Runs tagged ${t}`, text: t }))) : null,
    );
    replace(notesLine, r.notes ? h("span", { class: "muted", text: "Notes " }) : null, r.notes || "");
    notesLine.hidden = !r.notes;
  };
  const notesLine = h("p", { class: "run-notes" });
  const editorSlot = h("div", { class: "editor-slot" });
  const editButton = h("button", { type: "button", class: "button ghost small edit-run", title: "Rename the run, change its tags and notes, or delete it" }, icon("edit", 14), "Edit");
  /** @type {any} */
  let current = run;
  const closeEditor = () => {
    replace(editorSlot);
    editButton.hidden = false;
  };
  editButton.addEventListener("click", () => {
    editButton.hidden = true;
    replace(
      editorSlot,
      runEditor(current, {
        onSaved: (r) => {
          api.update(r);
          closeEditor();
        },
        onDeleted: () => location.assign(`/p/${seg(current.owner)}/${seg(current.project)}`),
        onClose: closeEditor,
      }),
    );
  });
  fillFacts(run);
  const tabs = h(
    "nav",
    { class: "tabs", "aria-label": "Run views" },
    tab("charts", "Charts", base),
    tab("overview", "Overview", base + "#overview"),
    tab("system", "System", base + "#system"),
    tab("logs", "Logs", base + "#logs"),
    tab("files", "Files", base + "#files"),
    hasMedia ? tab("media", "Media", base + "#media") : null,
    hasGradients && !shareToken ? tab("gradients", "Gradients", base + "/gradients") : null,
  );
  const el = h(
    "header",
    { class: "run-head" },
    h("div", { class: "run-title" }, badge, h("h1", { text: run.name }), h("code", { class: "run-id", title: "Run id", text: run.id }), alertSlot, editButton),
    facts,
    notesLine,
    editorSlot,
    tabs,
  );
  const api = {
    el,
    tabs,
    /** @param {any} r */
    update(r) {
      current = r;
      replace(badge, stateBadge(r.state));
      const title = el.querySelector("h1");
      if (title && title.textContent !== r.name) title.textContent = r.name; // renamed (here, elsewhere, by the run)
      fillFacts(r);
    },
    setAlerts,
  };
  return api;
}
