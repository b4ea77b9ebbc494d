// @ts-check
// `/p/{owner}/{project}/artifacts`: the project's artifacts, their versions and aliases,
// one version's files, metadata and lineage (the run that logged it, the runs that used
// it). `?name=` picks an artifact and `?v=` one of its versions; plain links throughout.

import { api, seg } from "../api.js";
import { h, replace, emptyState } from "../dom.js";
import { fmtAgo, fmtBytes, fmtDateTime } from "../lib/format.js";
import { setCrumbs } from "../layout.js";
import { aliasTags, artifactsHref } from "../artifacts-card.js";

/** @param {{id: string, name: string}} run */
function runLink(run) {
  return h("a", { href: `/r/${seg(run.id)}`, title: run.id, text: run.name || run.id });
}

/**
 * The Artifacts page.
 * @param {HTMLElement} el
 * @param {string} owner
 * @param {string} project
 */
export async function mountArtifacts(el, owner, project) {
  const params = new URLSearchParams(location.search);
  const base = `/projects/${seg(owner)}/${seg(project)}`;
  setCrumbs([{ text: "Projects", href: "/" }, { text: project, href: `/p/${seg(owner)}/${seg(project)}` }, { text: "Artifacts" }]);
  const { artifacts } = await api(`${base}/artifacts`);
  if (!artifacts.length) {
    replace(
      el,
      h(
        "section",
        { class: "page narrow" },
        h("h1", { text: "Artifacts" }),
        emptyState(
          "No artifacts yet",
          "Log a checkpoint or a data set from a run, and its versions show up here:",
          h("pre", { class: "code" }, 'art = gradexp.Artifact("model", type="model")\nart.add_file("model.pt")\nrun.log_artifact(art, aliases=["best"])'),
        ),
      ),
    );
    return;
  }
  const name = params.get("name") || artifacts[0].name;
  const list = h(
    "ul",
    { class: "artifact-list" },
    artifacts.map((/** @type {any} */ a) =>
      h(
        "li",
        { class: a.name === name ? "selected" : "" },
        h("a", { href: artifactsHref(owner, project, a.name), text: a.name }),
        h("span", { class: "muted", text: ` ${a.type} · ${a.version_count} version${a.version_count === 1 ? "" : "s"}` }),
      ),
    ),
  );
  const detail = h("div", { class: "artifact-detail" });
  replace(
    el,
    h(
      "section",
      { class: "page" },
      h("div", { class: "page-head" }, h("h1", { text: "Artifacts" }), h("span", { class: "muted", text: `${artifacts.length} in ${project}` })),
      h("div", { class: "artifacts-layout" }, h("nav", { class: "card artifact-nav" }, list), detail),
    ),
  );
  const { versions } = await api(`${base}/artifacts/${seg(name)}`);
  const wanted = params.get("v");
  const chosen = versions.find((/** @type {any} */ v) => String(v.version) === wanted) || versions[0];
  const rows = versions.map((/** @type {any} */ v) =>
    h(
      "tr",
      { class: v.version === chosen.version ? "selected" : "" },
      h("td", {}, h("a", { class: "strong", href: artifactsHref(owner, project, name, v.version), text: `v${v.version}` })),
      h("td", {}, aliasTags(v.aliases)),
      h("td", { class: "num", text: fmtBytes(v.size) }),
      h("td", { class: "num", text: String(v.file_count) }),
      h("td", {}, v.logged_by ? runLink(v.logged_by) : "—"),
      h("td", { class: "num", text: String(v.used_by.length) }),
      h("td", { title: fmtDateTime(v.created_at), text: fmtAgo(v.created_at) }),
    ),
  );
  const one = await api(`${base}/artifacts/${seg(name)}/v${chosen.version}`);
  const files = one.files.map((/** @type {any} */ f) =>
    h(
      "tr",
      {},
      h("td", { class: "mono", text: f.path }),
      h("td", { class: "num", text: f.ref ? "" : fmtBytes(f.size) }),
      h("td", { class: "mono muted", title: f.sha256 || f.ref, text: f.ref ? f.ref : f.sha256.slice(0, 12) }),
      h("td", {}, f.ref ? h("span", { class: "muted", text: "reference" }) : h("a", { href: `/api/v1${base}/artifact-blobs/${f.sha256}`, download: f.path.split("/").pop(), text: "download" })),
    ),
  );
  const meta = Object.keys(one.metadata || {}).length ? h("pre", { class: "code" }, JSON.stringify(one.metadata, null, 2)) : h("p", { class: "muted", text: "No metadata." });
  replace(
    detail,
    h(
      "section",
      { class: "card flush" },
      h("h2", { class: "card-title", text: `${name} · ${one.type}` }),
      h(
        "table",
        { class: "table versions" },
        h("thead", {}, h("tr", {}, ["Version", "Aliases", "Size", "Files", "Logged by", "Used by", "Created"].map((t) => h("th", { text: t })))),
        h("tbody", {}, rows),
      ),
    ),
    h(
      "section",
      { class: "card version-card" },
      h("h2", {}, `${name}:v${one.version} `, aliasTags(one.aliases)),
      one.description ? h("p", { text: one.description }) : null,
      h("p", { class: "muted mono", text: `digest ${one.digest}` }),
      h("h3", { text: "Lineage" }),
      h(
        "p",
        { class: "lineage" },
        "Logged by ",
        one.logged_by_runs.length ? one.logged_by_runs.map((/** @type {any} */ r, /** @type {number} */ i) => [i ? ", " : "", runLink(r)]) : "—",
        h("br"),
        "Used by ",
        one.used_by.length ? one.used_by.map((/** @type {any} */ r, /** @type {number} */ i) => [i ? ", " : "", runLink(r)]) : "no run yet",
      ),
      h("h3", { text: "Metadata" }),
      meta,
      h("h3", { text: `Files (${one.files.length})` }),
      h("table", { class: "table files" }, h("thead", {}, h("tr", {}, ["Path", "Size", "sha256", ""].map((t) => h("th", { text: t })))), h("tbody", {}, files)),
    ),
  );
}
