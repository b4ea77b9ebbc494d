// @ts-check
// `/`: the signed-in user's projects, most recently active first.

import { api, seg } from "../api.js";
import { h, replace, emptyState } from "../dom.js";
import { fmtAgo, fmtDateTime, fmtNum } from "../lib/format.js";
import { setCrumbs } from "../layout.js";

/**
 * The projects page.
 * @param {HTMLElement} el
 * @returns {Promise<void>}
 */
export async function mountProjects(el) {
  setCrumbs([{ text: "Projects" }]);
  const { projects } = await api("/projects");
  if (!projects.length) {
    replace(
      el,
      h(
        "section",
        { class: "page narrow" },
        h("h1", { text: "Projects" }),
        emptyState(
          "No runs yet",
          "Log your first run and it shows up here while it trains:",
          h("pre", { class: "code" }, 'import gradexp\n\nrun = gradexp.init(project="mnist", config={"lr": 1e-3})\nfor step in range(100):\n    gradexp.log({"train/loss": 1 / (step + 1)})\ngradexp.finish()'),
        ),
      ),
    );
    return;
  }
  const rows = projects.map((/** @type {any} */ p) => {
    const href = `/p/${seg(p.owner)}/${seg(p.name)}`;
    // The whole row opens the project (the name stays a real link for keyboards and new tabs).
    return h(
      "tr",
      { class: "row-link", on: { click: (e) => !e.target.closest("a") && location.assign(href) } },
      h("td", {}, h("a", { class: "strong", href, text: p.name })),
      h("td", { class: "muted", text: p.owner }),
      h("td", { class: "num", text: fmtNum(p.run_count) }),
      h("td", { title: p.last_run_at ? fmtDateTime(p.last_run_at) : "", text: p.last_run_at ? fmtAgo(p.last_run_at) : "no runs" }),
      h("td", { class: "muted", text: fmtDateTime(p.created_at).slice(0, 10) }),
    );
  });
  replace(
    el,
    h(
      "section",
      { class: "page narrow" },
      h("div", { class: "page-head" }, h("h1", { text: "Projects" }), h("span", { class: "muted", text: `${projects.length} project${projects.length === 1 ? "" : "s"}` })),
      h(
        "div",
        { class: "card flush" },
        h(
          "table",
          { class: "table" },
          h("thead", {}, h("tr", {}, h("th", { text: "Project" }), h("th", { text: "Owner" }), h("th", { class: "num", text: "Runs" }), h("th", { text: "Last run" }), h("th", { text: "Created" }))),
          h("tbody", {}, rows),
        ),
      ),
    ),
  );
}
