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
  const ownerFilter = new URLSearchParams(location.search).get("owner");
  setCrumbs(ownerFilter ? [{ text: "Projects", href: "/" }, { text: ownerFilter }] : [{ text: "Projects" }]);
  const all = (await api("/projects")).projects;
  const projects = ownerFilter ? all.filter((/** @type {any} */ p) => p.owner === ownerFilter) : all;
  const isTeam = ownerFilter && all.some((/** @type {any} */ p) => p.owner === ownerFilter && p.owner_kind === "team");
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
      h("td", { class: "muted" }, p.owner, p.owner_kind === "team" ? h("span", { class: "tag team-tag", title: `Your role: ${p.role}`, text: `team · ${p.role}` }) : null, p.visibility === "signed_in" ? h("span", { class: "tag", title: "Every signed-in user may read it", text: "shared" }) : null),
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
      h(
        "div",
        { class: "page-head" },
        h("h1", { text: ownerFilter ? `Projects of ${ownerFilter}` : "Projects" }),
        h("span", { class: "muted", text: `${projects.length} project${projects.length === 1 ? "" : "s"}` }),
        isTeam ? h("a", { class: "button small members-link", href: `/t/${seg(ownerFilter || "")}`, text: "Members" }) : null,
      ),
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
