// @ts-check
// `/p/{owner}/{project}`: the runs table. Filtering, sorting and paging happen on the
// server (one indexed query per page), so a project with thousands of runs pages as fast
// as one with ten. Runs update live from the project's event stream.

import { api, follow, qs, seg } from "../api.js";
import { debounce, emptyState, h, icon, prefs, replace, stateBadge } from "../dom.js";
import { setCrumbs } from "../layout.js";
import { visibilityControl } from "../teams.js";
import { fmtAgo, fmtDateTime, fmtDuration, fmtNum, fmtValue } from "../lib/format.js";
import { colorFor, configAt, defaultColumns, firstDirection, runDuration } from "../lib/runs.js";
import { confirmBar, renameInPlace } from "../run-edit.js";

const STATES = ["", "running", "finished", "failed", "crashed"];
const SORTABLE = { name: "Name", state: "State", started_at: "Started", last_step: "Step" };
const PAGE_SIZES = [25, 50, 100, 200];
const MAX_COMPARE = 20;

/**
 * A page of the runs list, as `/projects/{owner}/{project}/runs` sends it.
 * @typedef {{runs: any[], total: number, next_cursor: string | null}} RunsPage
 */

/**
 * The runs table of a project.
 * @param {HTMLElement} el
 * @param {string} owner
 * @param {string} project
 * @returns {Promise<void>}
 */
export async function mountRuns(el, owner, project) {
  const base = `/projects/${seg(owner)}/${seg(project)}`;
  setCrumbs([{ text: "Projects", href: "/" }, { text: owner, href: `/?owner=${encodeURIComponent(owner)}` }, { text: project }]);
  const url = new URLSearchParams(location.search);
  const stateParam = url.get("state") || "";
  /**
   * What the table shows: filters, order, page size, the cursor of each page visited
   * (for "previous"), the last response and the last error.
   * @type {{q: string, state: string, tag: string, order: string, limit: number, cursors: (string | null)[], page: RunsPage | null, error?: any}}
   */
  const state = {
    q: url.get("q") || "",
    state: STATES.includes(stateParam) ? stateParam : "",
    tag: url.get("tag") || "",
    order: url.get("order") || "-started_at",
    limit: PAGE_SIZES.includes(Number(url.get("limit"))) ? Number(url.get("limit")) : 50,
    cursors: [null], // the cursor of each page visited, for "previous"
    page: null, // the last response
  };
  const selKey = `selected:${owner}/${project}`;
  /** @type {Set<string>} */
  const selected = new Set(JSON.parse(sessionStorage.getItem("gradexp:" + selKey) || "[]"));
  const saveSelection = () => sessionStorage.setItem("gradexp:" + selKey, JSON.stringify([...selected]));
  const colKey = `columns:${owner}/${project}`;
  /** @type {string[] | null} the chosen columns ("summary:<key>", "config:<key>"), null until chosen */
  let columns = prefs.get(colKey, /** @type {string[] | null} */ (null));
  /** @type {{tags: string[], summary_keys: string[], config_keys: string[]}} */
  let available = { tags: [], summary_keys: [], config_keys: [] };

  // --- layout ---
  const search = h("input", { type: "search", class: "input", placeholder: "Filter by name or id", value: state.q, "aria-label": "Filter runs by name or id" });
  const stateSel = h(
    "select",
    { class: "input", "aria-label": "Filter by state" },
    STATES.map((s) => h("option", { value: s, selected: s === state.state, text: s ? s[0].toUpperCase() + s.slice(1) : "All states" })),
  );
  const tagSel = h("select", { class: "input", "aria-label": "Filter by tag" }, h("option", { value: "", text: "All tags" }));
  const compareBtn = h("a", { class: "button primary", href: "#", role: "button" });
  const clearSel = h("button", { class: "button ghost", type: "button", text: "Clear" });
  const deleteSel = h("button", { class: "button danger", type: "button", title: "Delete the selected runs (asks first)" });
  const confirmSlot = h("div", { class: "confirm-slot" });
  const colsButton = h("details", { class: "popover" });
  const countEl = h("span", { class: "muted" });
  const table = h("table", { class: "table runs" });
  const pager = h("div", { class: "pager" });
  const liveDot = h("span", { class: "live-dot", title: "Live: runs update as they train", hidden: true });
  const body = h("div", { class: "card flush table-wrap" }, h("p", { class: "muted pad loading", text: "Loading runs…" }));
  // Whose project, the viewer's role in it, and what that role may change (teams.js).
  const projectControls = h("span", { class: "project-controls" });
  api(base)
    .then((info) => replace(projectControls, info.owner_kind === "team" ? h("span", { class: "tag team-tag", text: `team · ${info.role}` }) : null, info.owner_kind === "team" ? h("a", { class: "button small", href: `/t/${seg(owner)}`, text: "Members" }) : null, visibilityControl(owner, project, info)))
    .catch(() => {});

  replace(
    el,
    h(
      "section",
      { class: "page" },
      h("div", { class: "page-head" }, h("h1", { text: project }), h("span", { class: "owner-note muted", text: `owned by ${owner}` }), countEl, liveDot, h("a", { class: "page-link", href: `/p/${seg(owner)}/${seg(project)}/artifacts`, text: "Artifacts" }), projectControls),
      h("div", { class: "toolbar" }, h("label", { class: "search" }, icon("search"), search), stateSel, tagSel, colsButton, h("div", { class: "spacer" }), clearSel, deleteSel, compareBtn),
      confirmSlot,
      body,
      pager,
    ),
  );

  function syncUrl() {
    /** @type {Record<string, string | number>} */
    const p = {};
    if (state.q) p.q = state.q;
    if (state.state) p.state = state.state;
    if (state.tag) p.tag = state.tag;
    if (state.order !== "-started_at") p.order = state.order;
    if (state.limit !== 50) p.limit = state.limit;
    history.replaceState(null, "", location.pathname + qs(p));
  }

  function updateCompare() {
    const n = selected.size;
    const label = n > MAX_COMPARE ? `Compare the first ${MAX_COMPARE} of ${n}` : n ? `Compare ${n} run${n === 1 ? "" : "s"}` : "Compare";
    replace(compareBtn, icon("compare"), label);
    compareBtn.classList.toggle("disabled", n < 1);
    compareBtn.href = n ? `/compare${qs({ runs: [...selected].slice(0, MAX_COMPARE) })}` : "#";
    compareBtn.title = n ? "Open the selected runs side by side" : "Select runs with the checkboxes to compare them";
    clearSel.hidden = n === 0;
    deleteSel.hidden = n === 0;
    replace(deleteSel, icon("trash", 14), `Delete ${n}`);
  }
  deleteSel.addEventListener("click", () => {
    const ids = [...selected];
    const what = ids.length === 1 ? "1 run" : `${fmtNum(ids.length)} runs`;
    replace(
      confirmSlot,
      confirmBar(
        `Delete ${what}? Their history, files and exports are removed for good.`,
        `Delete ${what}`,
        async () => {
          await api(`${base}/runs/delete`, { method: "POST", body: { ids } });
          replace(confirmSlot);
          selected.clear();
          saveSelection();
          updateCompare();
          await reload(false);
        },
        () => replace(confirmSlot),
      ),
    );
  });
  compareBtn.addEventListener("click", (e) => {
    if (!selected.size) e.preventDefault();
  });
  clearSel.addEventListener("click", () => {
    selected.clear();
    saveSelection();
    updateCompare();
    render();
  });

  // --- columns chooser ---
  function renderColumnsChooser() {
    const filter = h("input", { type: "search", class: "input small", placeholder: "Find a key" });
    const list = h("div", { class: "popover-list" });
    const fill = () => {
      const chosen = new Set(columns || []);
      const f = filter.value.toLowerCase();
      /**
       * @param {string} id
       * @param {string} label
       */
      const item = (id, label) =>
        h(
          "label",
          { class: "check" },
          h("input", {
            type: "checkbox",
            checked: chosen.has(id),
            on: {
              change: (/** @type {Event} */ e) => {
                const now = (columns || []).filter((c) => c !== id);
                if (/** @type {HTMLInputElement} */ (e.target).checked) now.push(id);
                columns = now;
                prefs.set(colKey, columns);
                render();
              },
            },
          }),
          h("span", { text: label }),
        );
      const sum = available.summary_keys.filter((k) => k.toLowerCase().includes(f));
      const cfg = available.config_keys.filter((k) => k.toLowerCase().includes(f));
      replace(
        list,
        sum.length ? h("div", { class: "popover-group", text: "Summary" }) : null,
        sum.map((k) => item("summary:" + k, k)),
        cfg.length ? h("div", { class: "popover-group", text: "Config" }) : null,
        cfg.map((k) => item("config:" + k, k)),
        !sum.length && !cfg.length ? h("div", { class: "muted pad", text: "No keys" }) : null,
      );
    };
    filter.addEventListener("input", fill);
    colsButton.addEventListener("toggle", () => colsButton.open && fill());
    // A popover closes on a click elsewhere or on Escape, like a menu.
    document.addEventListener("click", (e) => {
      if (colsButton.open && !colsButton.contains(/** @type {Node | null} */ (e.target))) colsButton.open = false;
    });
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && colsButton.open) colsButton.open = false;
    });
    fill();
    replace(colsButton, h("summary", { class: "button" }, icon("columns"), "Columns"), h("div", { class: "popover-body" }, filter, list));
  }

  // --- table ---
  function header() {
    // Every column but duration and tags sorts on the server (chosen summary and config
    // columns too: numbers in numeric order, runs without a value last either way).
    /**
     * @param {string} key
     * @param {string} label
     * @param {string | string[]} [cls]
     * @param {string} [title]
     */
    const sortTh = (key, label, cls, title) => {
      const active = state.order.replace(/^[-+]/, "") === key;
      const desc = state.order.startsWith("-");
      return h(
        "th",
        { class: ["sortable", ...(Array.isArray(cls) ? cls : [cls]), active ? "sorted" : null], "aria-sort": active ? (desc ? "descending" : "ascending") : "none", title },
        h(
          "button",
          {
            type: "button",
            class: "th-button",
            on: {
              click: () => {
                if (active) state.order = desc ? key : "-" + key;
                else state.order = firstDirection(key) + key;
                reload(true);
              },
            },
          },
          label,
          active ? h("span", { class: "sort-arrow", text: desc ? "↓" : "↑" }) : null,
        ),
      );
    };
    const allBox = h("input", { type: "checkbox", "aria-label": "Select all runs on this page" });
    /** @type {any[]} */
    const runs = state.page ? state.page.runs : [];
    const onPage = runs.filter((r) => selected.has(r.id)).length;
    allBox.checked = runs.length > 0 && onPage === runs.length;
    allBox.indeterminate = onPage > 0 && onPage < runs.length;
    allBox.addEventListener("change", () => {
      for (const r of runs) {
        if (allBox.checked) selected.add(r.id);
        else selected.delete(r.id);
      }
      saveSelection();
      updateCompare();
      render();
    });
    return h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { class: "check-col" }, allBox),
        sortTh("name", SORTABLE.name),
        sortTh("state", SORTABLE.state),
        sortTh("started_at", SORTABLE.started_at),
        h("th", { class: "num", text: "Duration" }),
        sortTh("last_step", SORTABLE.last_step, "num"),
        h("th", { text: "Tags" }),
        (columns || []).map((c) => sortTh(c, c.replace(/^(summary|config):/, ""), ["num", "value-col"], `${c.startsWith("config:") ? "Config" : "Summary"}: ${c.slice(c.indexOf(":") + 1)}`)),
      ),
    );
  }

  /**
   * @param {any} run
   * @param {number} index its place on the page (its colour)
   */
  function row(run, index) {
    const box = h("input", { type: "checkbox", checked: selected.has(run.id), "aria-label": `Select run ${run.name}` });
    box.addEventListener("change", () => {
      if (box.checked) selected.add(run.id);
      else selected.delete(run.id);
      saveSelection();
      updateCompare();
    });
    const link = h("a", { class: "strong", href: `/r/${seg(run.id)}`, text: run.name });
    /** @param {any} changed */
    const renamed = (changed) => {
      const page = state.page;
      if (!page) return;
      page.runs[index] = changed;
      const tr = table.querySelector(`tr[data-run="${CSS.escape(run.id)}"]`);
      if (tr) tr.replaceWith(row(changed, index));
    };
    const cells = (columns || []).map((c) => {
      const [kind, key] = [c.slice(0, c.indexOf(":")), c.slice(c.indexOf(":") + 1)];
      const v = kind === "summary" ? run.summary[key] : configAt(run.config, key);
      const number = typeof v === "number";
      const broken = v !== null && typeof v === "object" && v._type === "float"; // NaN, ±inf
      return h("td", { class: ["num", "value-col", v === undefined ? "missing" : null, broken ? "bad" : null], title: number ? fmtNum(v, 10) : undefined, text: v === undefined ? "—" : number ? fmtNum(v) : fmtValue(v) });
    });
    return h(
      "tr",
      { dataset: { run: run.id } },
      h("td", { class: "check-col" }, box),
      h("td", { class: "name-col" }, h("span", { class: "run-dot", style: { background: colorFor(index) } }), link, h("button", { type: "button", class: "icon-button rename", title: `Rename run ${run.name}`, "aria-label": `Rename run ${run.name}`, on: { click: () => renameInPlace(link, run, renamed) } }, icon("edit", 13)), h("span", { class: "run-id", text: run.id })),
      h("td", {}, stateBadge(run.state)),
      h("td", { title: fmtDateTime(run.started_at), text: fmtAgo(run.started_at) }),
      h("td", { class: "num", text: fmtDuration(runDuration(run)) }),
      h("td", { class: "num", text: run.last_step >= 0 ? fmtNum(run.last_step) : "—" }),
      h("td", { class: "tags-col" }, (run.tags || []).map((/** @type {string} */ t) => h("button", { type: "button", class: "tag", text: t, title: `Show runs tagged ${t}`, on: { click: () => setTag(t) } }))),
      cells,
    );
  }

  function render() {
    const page = state.page;
    if (!page) return;
    if (!page.runs.length) {
      const filtered = state.q || state.state || state.tag;
      replace(table);
      replace(body, filtered ? emptyState("No runs match", "Change or clear the filters above.") : emptyState("No runs in this project yet", "Runs appear here as soon as a script calls gradexp.init()."));
    } else {
      if (body.firstChild !== table) replace(body, table);
      replace(table, header(), h("tbody", {}, page.runs.map((r, i) => row(r, i))));
    }
    const start = (state.cursors.length - 1) * state.limit;
    countEl.textContent = `${fmtNum(page.total)} run${page.total === 1 ? "" : "s"}`;
    const prev = h("button", { type: "button", class: "button", disabled: state.cursors.length <= 1, text: "‹ Previous" });
    const next = h("button", { type: "button", class: "button", disabled: !page.next_cursor, text: "Next ›" });
    prev.addEventListener("click", () => {
      state.cursors.pop();
      reload(false);
    });
    next.addEventListener("click", () => {
      state.cursors.push(page.next_cursor);
      reload(false);
    });
    const size = h("select", { class: "input small", "aria-label": "Runs per page" }, PAGE_SIZES.map((n) => h("option", { value: n, selected: n === state.limit, text: `${n} per page` })));
    size.addEventListener("change", () => {
      state.limit = Number(size.value);
      reload(true);
    });
    replace(
      pager,
      h("span", { class: "muted", text: page.total ? `${fmtNum(start + 1)}–${fmtNum(start + page.runs.length)} of ${fmtNum(page.total)}` : "" }),
      h("div", { class: "spacer" }),
      size,
      prev,
      next,
    );
  }

  /** @type {AbortController | null} */
  let inflight = null;
  /**
   * Fetch the page the state names (the first one when `fromStart`).
   * @param {boolean} fromStart
   */
  async function reload(fromStart) {
    if (fromStart) state.cursors = [null];
    syncUrl();
    if (inflight) inflight.abort();
    const ctrl = new AbortController();
    inflight = ctrl;
    const cursor = state.cursors[state.cursors.length - 1];
    try {
      const page = await api(`${base}/runs${qs({ q: state.q, state: state.state, tag: state.tag, order: state.order, limit: state.limit, cursor })}`, { signal: ctrl.signal });
      if (inflight !== ctrl) return;
      state.page = page;
      if (!columns) {
        await columnsReady;
        columns = defaultColumns(available.summary_keys);
      }
      render();
    } catch (err) {
      const e = /** @type {Error} */ (err);
      if (e.name === "AbortError") return;
      state.error = e;
      replace(body, emptyState("Could not load runs", e.message));
    }
  }

  /** @param {string} t */
  function setTag(t) {
    state.tag = t;
    if (![...tagSel.options].some((o) => o.value === t)) tagSel.append(h("option", { value: t, text: t }));
    tagSel.value = t;
    reload(true);
  }

  search.addEventListener("input", debounce(() => {
    state.q = search.value.trim();
    reload(true);
  }, 200));
  stateSel.addEventListener("change", () => {
    state.state = stateSel.value;
    reload(true);
  });
  tagSel.addEventListener("change", () => {
    state.tag = tagSel.value;
    reload(true);
  });

  const columnsReady = api(`${base}/columns`)
    .then((cols) => {
      available = cols;
      for (const t of cols.tags) tagSel.append(h("option", { value: t, selected: t === state.tag, text: t }));
      if (state.tag && !cols.tags.includes(state.tag)) tagSel.append(h("option", { value: state.tag, selected: true, text: state.tag }));
    })
    .catch(() => {})
    .finally(renderColumnsChooser);

  updateCompare();
  await reload(true);
  // A project that does not exist (or is not yours) is a page-level "Not found", with no
  // toolbar and no live stream retrying forever.
  if (!state.page && state.error && state.error.status === 404) throw state.error;

  // --- live: run events update rows in place; a run we do not show yet reloads the page ---
  // (`rows=0`: the table shows runs, not their history, so the stream sends run events only.)
  const reloadSoon = debounce(() => reload(false), 400);
  /** @type {Map<string, string>} */
  const known = new Map(); // id -> state, of runs the stream told us about that are not on this page
  follow(
    `${base}/events${qs({ rows: 0 })}`,
    {
      run: (run) => {
        const page = state.page;
        if (!page) return;
        const i = page.runs.findIndex((r) => r.id === run.id);
        if (i >= 0) {
          page.runs[i] = run;
          const tr = table.querySelector(`tr[data-run="${CSS.escape(run.id)}"]`);
          if (tr) tr.replaceWith(row(run, i));
          // A run that no longer matches the state filter leaves the page.
          if (state.state && run.state !== state.state) reloadSoon();
        } else if (known.get(run.id) !== run.state) {
          // New here (a new run, or one on another page), or its state changed (it may now
          // match the filters): one reload, not one per progress event of a run that then
          // still is not on this page.
          known.set(run.id, run.state);
          reloadSoon();
        }
      },
    },
    (status) => {
      liveDot.hidden = status !== "open";
    },
  );
}
