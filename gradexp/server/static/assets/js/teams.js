// @ts-check
// Working as a team: the namespace switcher of the top bar, a team's Members page
// (`/t/{team}`), a project's visibility control and the share dialog of a run or a compare
// view. What a role may do is decided by the server (docs/teams.md); these only hide
// controls the viewer's role cannot use, and show the server's refusal if one comes.

import { api, send, seg } from "./api.js";
import { h, replace } from "./dom.js";
import { fmtDateTime } from "./lib/format.js";
import { setCrumbs } from "./layout.js";

/** Roles that may manage a team's members, a project's visibility and its share links. */
export const ADMIN_ROLES = new Set(["admin", "owner"]);

/**
 * The top bar's switcher between the user's own namespace and their teams: it opens the
 * projects page of the one picked (`/?owner=NAME`).
 * @param {{user: {name: string}, teams: {name: string, role: string}[]}} me
 * @returns {HTMLElement | null}
 */
export function namespaceSwitcher(me) {
  if (!me.teams || !me.teams.length) return null;
  const current = new URLSearchParams(location.search).get("owner") || "";
  /** @param {Event} e */
  const go = (e) => {
    const value = /** @type {HTMLSelectElement} */ (e.target).value;
    location.assign(value ? `/?owner=${encodeURIComponent(value)}` : "/");
  };
  return h(
    "select",
    { class: "switcher", id: "namespace-switcher", "aria-label": "Switch between your projects and your teams'", on: { change: go } },
    h("option", { value: "", text: "All projects", selected: current === "" }),
    h("option", { value: me.user.name, text: `${me.user.name} (you)`, selected: current === me.user.name }),
    me.teams.map((t) => h("option", { value: t.name, text: `${t.name} · team (${t.role})`, selected: current === t.name })),
  );
}

/**
 * `/t/{team}`: the team's members; its admins add existing users, change roles, remove.
 * @param {HTMLElement} el
 * @param {string} team
 */
export async function mountMembers(el, team) {
  setCrumbs([{ text: "Projects", href: `/?owner=${encodeURIComponent(team)}` }, { text: `${team} · members` }]);
  const doc = await api(`/teams/${seg(team)}`);
  const admin = ADMIN_ROLES.has(doc.role);
  const status = h("p", { class: "form-status", role: "status" });
  /** @param {unknown} err */
  const fail = (err) => replace(status, h("span", { class: "error-text", text: /** @type {Error} */ (err).message }));
  const redraw = () => mountMembers(el, team).catch(fail);
  const rows = doc.members.map((/** @type {any} */ m) => {
    const role = admin
      ? h(
          "select",
          { class: "input role-select", "aria-label": `Role of ${m.name}`, on: { change: (/** @type {Event} */ e) => send(`/teams/${seg(team)}/members/${seg(m.name)}`, "PUT", { role: /** @type {HTMLSelectElement} */ (e.target).value }).then(redraw, fail) } },
          ["viewer", "member", "admin"].map((r) => h("option", { value: r, text: r, selected: r === m.role })),
        )
      : h("span", { class: "tag", text: m.role });
    return h(
      "tr",
      { dataset: { member: m.name } },
      h("td", { class: "strong", text: m.name }),
      h("td", {}, role),
      h("td", { class: "muted", text: fmtDateTime(m.added_at).slice(0, 10) }),
      admin ? h("td", {}, h("button", { type: "button", class: "button small ghost", text: "Remove", on: { click: () => send(`/teams/${seg(team)}/members/${seg(m.name)}`, "DELETE").then(redraw, fail) } })) : null,
    );
  });
  const nameInput = h("input", { class: "input", name: "user", placeholder: "user name", "aria-label": "User to add", required: true });
  const roleInput = h("select", { class: "input", name: "role", "aria-label": "Role of the new member" }, ["viewer", "member", "admin"].map((r) => h("option", { value: r, text: r, selected: r === "member" })));
  const addForm = admin
    ? h(
        "form",
        {
          class: "add-member",
          on: {
            submit: (/** @type {Event} */ e) => {
              e.preventDefault();
              send(`/teams/${seg(team)}/members/${seg(nameInput.value.trim())}`, "PUT", { role: roleInput.value }).then(redraw, fail);
            },
          },
        },
        nameInput,
        roleInput,
        h("button", { type: "submit", class: "button primary", text: "Add member" }),
      )
    : null;
  replace(
    el,
    h(
      "section",
      { class: "page narrow" },
      h("div", { class: "page-head" }, h("h1", { text: `${team} · members` }), h("span", { class: "muted", text: `you are ${doc.role === "admin" ? "an" : "a"} ${doc.role}` })),
      h("p", { class: "muted", text: "Viewers read the team's projects. Members also log runs and edit or delete their own. Admins also edit and delete any run, manage members and delete projects." }),
      h(
        "div",
        { class: "card flush" },
        h(
          "table",
          { class: "table members" },
          h("thead", {}, h("tr", {}, h("th", { text: "User" }), h("th", { text: "Role" }), h("th", { text: "Added" }), admin ? h("th", { text: "" }) : null)),
          h("tbody", {}, rows),
        ),
      ),
      addForm ? h("div", { class: "card members-add" }, h("h2", { text: "Add an existing user" }), addForm) : null,
      status,
    ),
  );
}

/**
 * A project's visibility, as a control for its owner or team admin (a note for others).
 * @param {string} owner
 * @param {string} project
 * @param {{role: string, visibility?: string}} info
 */
export function visibilityControl(owner, project, info) {
  const visibility = info.visibility || "private";
  if (!ADMIN_ROLES.has(info.role)) {
    return h("span", { class: "muted visibility", text: visibility === "signed_in" ? "visible to signed-in users" : "" });
  }
  /** @param {Event} e */
  const change = (e) => {
    const value = /** @type {HTMLSelectElement} */ (e.target).value;
    send(`/projects/${seg(owner)}/${seg(project)}/visibility`, "PUT", { visibility: value }).catch((err) => alert(err.message));
  };
  return h(
    "select",
    { class: "input visibility", "aria-label": "Who can see this project", on: { change } },
    h("option", { value: "private", text: "Private", selected: visibility === "private" }),
    h("option", { value: "signed_in", text: "All signed-in users (read-only)", selected: visibility === "signed_in" }),
  );
}

const EXPIRY = [
  ["", "Never expires"],
  ["86400", "Expires in 1 day"],
  ["604800", "Expires in 7 days"],
  ["2592000", "Expires in 30 days"],
];

/**
 * The Share button of a run or a compare view: a dialog that makes a read-only link to
 * these runs (anyone with it sees them, live, without an account), and lists and revokes
 * the project's links. Shown to the project's owner and team admins only.
 * @param {{owner: string, project: string, role: string}} where
 * @param {string[]} runIds
 * @returns {HTMLElement | null}
 */
export function shareButton(where, runIds) {
  if (!ADMIN_ROLES.has(where.role)) return null;
  const base = `/projects/${seg(where.owner)}/${seg(where.project)}/shares`;
  const dialog = h("dialog", { class: "share-dialog", "aria-label": "Share" });
  const open = async () => {
    const expiry = h("select", { class: "input", "aria-label": "Expiry" }, EXPIRY.map(([v, t]) => h("option", { value: v, text: t })));
    const result = h("div", { class: "share-result" });
    const list = h("div", { class: "share-list" });
    const drawList = async () => {
      const { shares } = await api(base);
      const live = shares.filter((/** @type {any} */ s) => !s.revoked_at && (!s.expires_at || s.expires_at * 1000 > Date.now()));
      replace(
        list,
        live.length ? h("h3", { text: "Live links of this project" }) : null,
        live.map((/** @type {any} */ s) =>
          h(
            "div",
            { class: "share-row", dataset: { share: s.id } },
            h("span", { text: `${s.runs.length === 1 ? "run " + s.runs[0] : s.runs.length + " runs"} · by ${s.created_by} · ${s.expires_at ? "until " + fmtDateTime(s.expires_at) : "no expiry"}` }),
            h("button", { type: "button", class: "button small", text: "Revoke", on: { click: () => send(`${base}/${s.id}`, "DELETE").then(drawList) } }),
          ),
        ),
      );
    };
    const create = h("button", {
      type: "button",
      class: "button primary",
      text: "Create link",
      on: {
        click: async () => {
          try {
            const link = await send(base, "POST", { runs: runIds, expires_in: expiry.value ? Number(expiry.value) : null });
            const url = h("input", { class: "input share-url", readonly: true, value: link.url, "aria-label": "Share link" });
            replace(result, url, h("button", { type: "button", class: "button", text: "Copy", on: { click: () => navigator.clipboard && navigator.clipboard.writeText(link.url) } }), h("p", { class: "muted", text: "Anyone with this link sees these runs, live, read-only, without an account. The link is shown only now." }));
            url.select();
            drawList();
          } catch (err) {
            replace(result, h("span", { class: "error-text", text: /** @type {Error} */ (err).message }));
          }
        },
      },
    });
    replace(
      dialog,
      h("h2", { text: runIds.length === 1 ? "Share this run" : `Share these ${runIds.length} runs` }),
      h("p", { class: "muted", text: "A read-only link that opens this page without an account, showing these runs and nothing else." }),
      h("div", { class: "share-make" }, expiry, create),
      result,
      list,
      h("form", { method: "dialog", class: "share-close" }, h("button", { class: "button", text: "Close" })),
    );
    if (!dialog.isConnected) document.body.append(dialog);
    dialog.showModal();
    drawList();
  };
  return h("button", { type: "button", class: "button share-button", text: "Share", on: { click: open } });
}
