// @ts-check
// What the Artifacts page and the run page share: the Artifacts page's address, alias
// tags, and the run page's card of the artifact versions a run logged and used (pages do
// not import each other).

import { api, seg, qs } from "./api.js";
import { h } from "./dom.js";
import { fmtBytes } from "./lib/format.js";

/**
 * The path of the Artifacts page, optionally at one artifact and version.
 * @param {string} owner
 * @param {string} project
 * @param {string} [name]
 * @param {number} [version]
 */
export function artifactsHref(owner, project, name, version) {
  return `/p/${seg(owner)}/${seg(project)}/artifacts${name ? qs({ name, v: version }) : ""}`;
}

/** @param {string[]} aliases */
export function aliasTags(aliases) {
  return h("span", { class: "aliases" }, aliases.map((a) => h("span", { class: `tag alias${a === "latest" ? " latest" : ""}`, text: a })));
}

/**
 * The run page's card: the artifact versions the run logged and used (null if none).
 * @param {any} run
 * @returns {Promise<HTMLElement | null>}
 */
export async function runArtifactsCard(run) {
  const doc = await api(`/runs/${seg(run.id)}/artifacts`);
  if (!doc.logged.length && !doc.used.length) return null;
  /** @param {any} v */
  const item = (v) =>
    h("li", {}, h("a", { href: artifactsHref(run.owner, run.project, v.name, v.version), text: `${v.name}:v${v.version}` }), " ", aliasTags(v.aliases), h("span", { class: "muted", text: ` ${v.type} · ${fmtBytes(v.size)}` }));
  return h(
    "section",
    { class: "card run-artifacts" },
    h("h2", {}, "Artifacts ", h("a", { class: "muted small", href: artifactsHref(run.owner, run.project), text: "all in project" })),
    doc.logged.length ? [h("h3", { text: "Logged" }), h("ul", {}, doc.logged.map(item))] : null,
    doc.used.length ? [h("h3", { text: "Used" }), h("ul", {}, doc.used.map(item))] : null,
  );
}
