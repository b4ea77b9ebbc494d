// @ts-check
// `/r/{id}` (one run) and `/compare?runs=a,b` (several runs): charts, overview, media.

import { api, follow, qs, seg, shareToken } from "../api.js";
import { Board } from "../board.js";
import { breakable, emptyState, h, replace, stateBadge } from "../dom.js";
import { setCrumbs } from "../layout.js";
import { fmtAgo, fmtDateTime, fmtDuration, fmtNum, fmtValue } from "../lib/format.js";
import { colorFor, flatten, runDuration } from "../lib/runs.js";
import { pickRank, rankHref, rankTrouble, writerLabel } from "../lib/ranks.js";
import { isTyped } from "../lib/values.js";
import { LogsView, SystemView, environmentCard } from "../machine.js";
import { FilesView } from "../files.js";
import { MediaView } from "../media.js";
import { runHeader } from "../run-header.js";
import { runArtifactsCard } from "../artifacts-card.js";
import { shareButton } from "../teams.js";

/** @typedef {{key: string, kind: string}} KeyInfo */

const CHARTABLE = new Set(["number", "bool"]);
const MEDIA = new Set(["tensor", "image", "gallery", "table"]);
const LIVE_STATES = new Set(["running", "crashed"]); // a crashed run may still come back
const MAX_STREAMS = 3; // live projects followed at once by the compare view

/**
 * A key/value table (config, summary, facts); typed values (histograms...) are muted,
 * NaN and ±inf flagged.
 * @param {[string, any][]} entries
 * @param {string} emptyText
 */
function kvTable(entries, emptyText) {
  if (!entries.length) return h("p", { class: "muted pad", text: emptyText });
  return h(
    "table",
    { class: "table kv" },
    h(
      "tbody",
      {},
      entries.map(([k, v]) => {
        const typed = v !== null && typeof v === "object" && v._type && v._type !== "float"; // a histogram, tensor, image
        const broken = v !== null && typeof v === "object" && v._type === "float"; // NaN, ±inf
        return h("tr", {}, h("th", { title: k }, breakable(k)), h("td", { class: [typed ? "muted" : null, broken ? "bad" : null], text: Array.isArray(v) ? JSON.stringify(v) : fmtValue(v) }));
      }),
    ),
  );
}

/**
 * The run's alerts (gradexp.alert), newest first.
 * @param {{seq: number, time: number, level: string, title: string, text: string}[]} alerts
 */
function alertList(alerts) {
  return h(
    "ul",
    { class: "alerts" },
    alerts
      .slice()
      .reverse()
      .map((a) =>
        h(
          "li",
          { class: ["alert", `level-${a.level}`], dataset: { seq: String(a.seq) } },
          h("div", { class: "alert-head" }, h("span", { class: "alert-level", text: a.level }), h("b", { text: a.title }), h("span", { class: "alert-time", title: fmtDateTime(a.time), text: fmtAgo(a.time) })),
          a.text ? h("div", { class: "alert-text", text: a.text }) : null,
        ),
      ),
  );
}

/**
 * A distributed run's ranks (docs/distributed.md): each one's state, exit code, host and
 * progress; a failed or crashed rank stands out.
 * @param {any} run
 */
function ranksCard(run) {
  const rows = run.writers.map((/** @type {any} */ w) =>
    h(
      "tr",
      { class: w.state === "failed" || w.state === "crashed" ? "bad" : null, dataset: { rank: String(w.rank) } },
      h("td", {}, h("a", { href: rankHref(w.rank, "#charts"), text: `rank ${w.rank}` })),
      h("td", {}, stateBadge(w.state)),
      h("td", { text: w.exit_code === null || w.exit_code === undefined ? "" : String(w.exit_code) }),
      h("td", { text: `${(w.host && w.host.hostname) || ""}${w.host && w.host.pid ? " pid " + w.host.pid : ""}` }),
      h("td", { text: w.last_step >= 0 ? fmtNum(w.last_step) : "" }),
      h("td", { title: fmtDateTime(w.heartbeat_at), text: fmtAgo(w.heartbeat_at) }),
    ),
  );
  const trouble = rankTrouble(run);
  return h(
    "section",
    { class: "card ranks-card" },
    h("h2", { text: `Ranks (${run.world_size})` }),
    trouble ? h("p", { class: "error pad", text: trouble }) : null,
    h(
      "table",
      { class: "table" },
      h("thead", {}, h("tr", {}, ["rank", "state", "exit code", "host", "last step", "last heartbeat"].map((t) => h("th", { text: t })))),
      h("tbody", {}, rows),
    ),
  );
}

/**
 * Which rank of a distributed run the page shows: one link per rank, with its state.
 * @param {any} run
 * @param {number} rank
 */
function rankBar(run, rank) {
  const links = run.writers.map((/** @type {any} */ w) =>
    h("a", {
      class: ["rank-link", `state-${w.state}`, w.rank === rank ? "active" : null],
      href: rankHref(w.rank, location.hash),
      "aria-current": w.rank === rank ? "page" : null,
      text: writerLabel(w),
    }),
  );
  return h("nav", { class: "rank-bar", "aria-label": "Ranks" }, h("span", { class: "muted", text: "Showing" }), ...links);
}

/**
 * The overview tab: alerts, config, summary and the run's facts.
 * @param {any} run
 * @param {any[]} [alerts]
 */
function overview(run, alerts = []) {
  const summary = Object.entries(run.summary || {})
    .filter(([k]) => !k.includes("#"))
    .sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }));
  const info = /** @type {[string, unknown][]} */ ([
    ["id", run.id],
    ["state", run.state],
    ["exit code", run.exit_code],
    ["ranks", rankTrouble(run) || null],
    ["started", fmtDateTime(run.started_at)],
    ["finished", run.finished_at ? fmtDateTime(run.finished_at) : null],
    ["duration", fmtDuration(runDuration(run))],
    ["last heartbeat", fmtAgo(run.heartbeat_at)],
    ["group", run.group],
    ["job type", run.job_type],
    ["tags", (run.tags || []).join(", ") || null],
    ["notes", run.notes],
    // Host facts are identifiers (a pid, a version), not quantities: no digit grouping.
    ...flatten(run.host || {}, "host.").map(([k, v]) => /** @type {[string, unknown]} */ ([k, typeof v === "number" ? String(v) : v])),
    ...flatten(run.telemetry || {}, "telemetry."),
  ]).filter(([, v]) => v !== null && v !== undefined && v !== "");
  const env = h("div", { class: "env-slot" });
  environmentCard(run, kvTable, flatten).then((card) => replace(env, card));
  const artifacts = h("div", { class: "artifacts-slot" });
  runArtifactsCard(run).then((card) => replace(artifacts, card));
  return h(
    "div",
    { class: "overview" },
    alerts.length ? h("section", { class: "card alerts-card" }, h("h2", { text: `Alerts (${alerts.length})` }), alertList(alerts)) : null,
    run.writers ? ranksCard(run) : null,
    h("section", { class: "card" }, h("h2", { text: "Config" }), kvTable(flatten(run.config || {}), "No config. Pass config={...} to gradexp.init().")),
    h("section", { class: "card" }, h("h2", { text: "Summary" }), kvTable(summary, "No summary values yet.")),
    artifacts,
    h("section", { class: "card" }, h("h2", { text: "Run" }), kvTable(info, "")),
    env,
  );
}

/**
 * The run page.
 * @param {HTMLElement} el
 * @param {string} runId
 * @returns {Promise<void>}
 */
export async function mountRun(el, runId) {
  const [run, alertDoc] = await Promise.all([api(`/runs/${seg(runId)}`), api(`/runs/${seg(runId)}/alerts`)]);
  // A distributed run shows one rank at a time (?rank=N; its history is rank 0's).
  const rank = pickRank(run, location.search);
  const keyList = await api(`/runs/${seg(runId)}/keys${qs({ rank: rank || "" })}`);
  /** @type {any[]} */
  let alerts = alertDoc.alerts;
  /** @type {KeyInfo[]} */
  const keyInfo = keyList.keys;
  setCrumbs(shareToken ? [{ text: `${run.owner}/${run.project}` }, { text: run.name }] : [{ text: "Projects", href: "/" }, { text: run.owner, href: `/?owner=${encodeURIComponent(run.owner)}` }, { text: run.project, href: `/p/${seg(run.owner)}/${seg(run.project)}` }, { text: run.name }]);
  const kinds = new Map(keyInfo.map((k) => [k.key, k.kind]));
  const hasMedia = () => [...kinds.values()].some((k) => MEDIA.has(k));
  const hasGradients = () => [...kinds.values()].some((k) => k === "histogram");

  const VIEWS = ["overview", "system", "logs", "files"];
  const active = () => (VIEWS.includes(location.hash.slice(1)) ? location.hash.slice(1) : location.hash === "#media" && hasMedia() ? "media" : "charts");
  let head = runHeader(run, active(), { hasMedia: hasMedia(), hasGradients: hasGradients(), alerts: alerts.length });
  const chartsEl = h("div", { class: "view" });
  const overviewEl = h("div", { class: "view" });
  const mediaEl = h("div", { class: "view" });
  const systemEl = h("div", { class: "view" });
  const logsEl = h("div", { class: "view" });
  const share = shareToken ? null : shareButton(run, [run.id]);
  if (share) head.el.querySelector(".run-title")?.append(share);
  const filesEl = h("div", { class: "view" });
  const page = h("section", { class: "page" }, head.el, run.writers ? rankBar(run, rank) : null, chartsEl, overviewEl, mediaEl, systemEl, logsEl, filesEl);
  replace(el, page);

  const runs = [{ id: run.id, name: rank ? `${run.name} (rank ${rank})` : run.name, color: colorFor(rank), started_at: run.started_at, rank }];
  const board = new Board(chartsEl, {
    runs,
    keys: keyInfo.filter((k) => CHARTABLE.has(k.kind)).map((k) => k.key),
    prefsKey: `${run.owner}/${run.project}`,
    metrics: { [run.id]: run.metrics || [] },
  });
  /** @type {MediaView | null} */
  let media = null;
  /** @type {SystemView | null} */
  let system = null;
  /** @type {LogsView | null} */
  let logs = null;
  /** @type {FilesView | null} */
  let files = null;
  const isLive = () => LIVE_STATES.has(run.state);
  const show = () => {
    const tab = active();
    chartsEl.hidden = tab !== "charts";
    overviewEl.hidden = tab !== "overview";
    mediaEl.hidden = tab !== "media";
    systemEl.hidden = tab !== "system";
    logsEl.hidden = tab !== "logs";
    filesEl.hidden = tab !== "files";
    if (tab === "files" && !files) files = new FilesView(filesEl, run);
    if (tab === "system" && !system) system = new SystemView(systemEl, runs, { live: isLive });
    if (tab === "logs" && !logs) logs = new LogsView(logsEl, run, { live: isLive, rank });
    for (const a of head.tabs.querySelectorAll(".tab")) {
      const href = a.getAttribute("href") || "";
      const on = href.endsWith("#" + tab) || (tab === "charts" && !href.includes("#") && !href.endsWith("/gradients"));
      a.classList.toggle("active", on);
      if (on) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    if (tab === "overview") replace(overviewEl, overview(run, alerts));
    if (tab === "media" && !media) media = new MediaView(mediaEl, run, keyInfo.filter((k) => MEDIA.has(k.kind)));
  };
  window.addEventListener("hashchange", show);
  show();

  if (!LIVE_STATES.has(run.state)) return;
  // The indicator says what is true now: live while running and connected, "no data
  // lately" for a silent (crashed) run, reconnecting while the stream is down, and
  // nothing once the run has finished.
  let connected = false;
  const showLive = () => board.setLive(!LIVE_STATES.has(run.state) ? null : !connected ? "reconnecting" : run.state === "running" ? "live" : "silent");
  board.setLive(run.state === "running" ? "live" : "silent");
  // The header's step and duration tick along while the run is live (at most once a second).
  let factsTimer = 0;
  const refreshFacts = () => {
    if (factsTimer) return;
    factsTimer = setTimeout(() => {
      factsTimer = 0;
      head.update(run);
    }, 1000);
  };
  const ticker = setInterval(() => (LIVE_STATES.has(run.state) ? refreshFacts() : clearInterval(ticker)), 5000);
  const stream = follow(
    `/runs/${seg(run.id)}/events${qs({ after_seq: run.acked_seq })}`,
    {
      rows: (data) => {
        /** @type {Record<string, any>[]} */
        const rows = data.rows;
        if (rank) return; // the live rows are rank 0's; another rank's charts show what it had
        board.appendRows(run.id, rows);
        const last = rows.length ? rows[rows.length - 1]._step : -1;
        if (last > run.last_step) {
          run.last_step = last;
          refreshFacts();
        }
        let newTab = false;
        for (const row of rows) {
          for (const [k, v] of Object.entries(row)) {
            if (k.startsWith("_") || kinds.has(k)) continue;
            const kind = v && typeof v === "object" && v._type && v._type !== "float" ? v._type : "number";
            kinds.set(k, kind);
            if (kind !== "number") newTab = true;
          }
        }
        if (media) media.onRows(rows);
        if (newTab) {
          const fresh = runHeader(run, active(), { hasMedia: hasMedia(), hasGradients: hasGradients(), alerts: alerts.length });
          head.el.replaceWith(fresh.el);
          head = fresh;
        }
      },
      run: (r) => {
        Object.assign(run, r);
        head.update(r);
        // Alerts are not rows: look again whenever the run changes (cheap, and rare).
        api(`/runs/${seg(run.id)}/alerts`)
          .then((doc) => {
            alerts = doc.alerts;
            head.setAlerts(alerts.length);
            if (active() === "overview") replace(overviewEl, overview(run, alerts));
          })
          .catch(() => {});
        if (active() === "overview") replace(overviewEl, overview(run, alerts));
        if (files && active() === "files") files.onRunChanged(); // new files come with batches
        if (!LIVE_STATES.has(r.state)) stream.close(); // finished: nothing more will come
        showLive();
      },
    },
    (status) => {
      connected = status === "open";
      showLive();
    },
  );
}

// --- compare ---

/**
 * Keys down, runs across: one value per run, rows that differ marked (and by default the
 * only ones shown).
 * @param {any[]} runs
 * @param {(run: any) => [string, unknown][]} entriesOf
 * @param {string} emptyText
 */
function compareTable(runs, entriesOf, emptyText) {
  const maps = runs.map((r) => new Map(entriesOf(r)));
  const keys = [...new Set(maps.flatMap((m) => [...m.keys()]))].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  if (!keys.length) return h("p", { class: "muted pad", text: emptyText });
  /** @param {string} k */
  const differs = (k) => new Set(maps.map((m) => JSON.stringify(m.get(k) ?? null))).size > 1;
  // Left-aligned like the other key/value tables, under each run's name; NaN in red.
  /**
   * @param {Map<string, unknown>} m
   * @param {string} k
   */
  const cell = (m, k) => {
    const v = m.get(k);
    const broken = isTyped(v) && v._type === "float";
    return h("td", { class: [m.has(k) ? null : "missing", broken ? "bad" : null], title: typeof v === "number" ? fmtNum(v, 10) : undefined, text: m.has(k) ? fmtValue(v) : "—" });
  };
  const onlyDiff = h("input", { type: "checkbox", checked: runs.length > 1 });
  const tbody = h("tbody");
  const fill = () =>
    replace(
      tbody,
      keys
        .filter((k) => !onlyDiff.checked || differs(k))
        .map((k) => h("tr", { class: differs(k) ? "differs" : null }, h("th", { title: k }, breakable(k)), maps.map((m) => cell(m, k)))),
    );
  onlyDiff.addEventListener("change", fill);
  fill();
  return h(
    "div",
    {},
    h("label", { class: "check pad" }, onlyDiff, h("span", { text: "Only differences" })),
    h("div", { class: "table-wrap" }, h("table", { class: "table kv compare" }, h("thead", {}, h("tr", {}, h("th", { text: "Key" }), runs.map((r) => h("th", {}, h("span", { class: "run-dot", style: { background: r.color } }), r.name)))), tbody)),
  );
}

/**
 * The compare view of the runs in `?runs=` (or of a share link's runs: `shared`).
 * @param {HTMLElement} el
 * @param {string[]} [shared]
 * @returns {Promise<void>}
 */
export async function mountCompare(el, shared) {
  const ids = (shared ? shared.join(",") : new URLSearchParams(location.search).get("runs") || "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .slice(0, 50);
  setCrumbs([{ text: "Projects", href: "/" }, { text: "Compare" }]);
  if (!ids.length) {
    replace(el, h("section", { class: "page" }, emptyState("Nothing to compare", "Select runs in a project's table, then press Compare.", h("a", { class: "button", href: "/", text: "All projects" }))));
    return;
  }
  const loaded = await Promise.all(ids.map((id) => Promise.all([api(`/runs/${seg(id)}`), api(`/runs/${seg(id)}/keys`)]).catch((err) => [null, null, err, id])));
  const missing = loaded.filter((x) => !x[0]).map((x) => x[3]);
  const ok = loaded.filter((x) => x[0]);
  if (!ok.length) throw loaded[0][2];
  const runs = ok.map(([run], i) => ({ ...run, color: colorFor(i) }));
  const first = runs[0];
  const sameProject = runs.every((r) => r.project === first.project && r.owner === first.owner);
  setCrumbs(
    shareToken
      ? [{ text: `${first.owner}/${first.project}` }, { text: `Compare ${runs.length} runs` }]
      : sameProject
        ? [{ text: "Projects", href: "/" }, { text: first.project, href: `/p/${seg(first.owner)}/${seg(first.project)}` }, { text: `Compare ${runs.length} runs` }]
        : [{ text: "Projects", href: "/" }, { text: `Compare ${runs.length} runs` }],
  );

  /** @type {Set<string>} */
  const keys = new Set();
  for (const [, keyList] of ok) for (const k of /** @type {KeyInfo[]} */ (keyList.keys)) if (CHARTABLE.has(k.kind)) keys.add(k.key);

  const legend = h(
    "div",
    { class: "legend" },
    runs.map((r) => h("a", { class: "legend-item", href: shareToken ? null : `/r/${seg(r.id)}`, dataset: { run: r.id } }, h("span", { class: "run-dot", style: { background: r.color } }), h("span", { class: "legend-name", text: r.name }), h("span", { class: "state-slot" }, stateBadge(r.state)))),
  );
  const active = () => (location.hash === "#config" ? "config" : location.hash === "#system" ? "system" : "charts");
  const tabs = h(
    "nav",
    { class: "tabs" },
    h("a", { class: "tab", href: "#charts", text: "Charts" }),
    h("a", { class: "tab", href: "#system", text: "System" }),
    h("a", { class: "tab", href: "#config", text: "Config & summary" }),
    sameProject && !shareToken ? shareButton(first, runs.map((r) => r.id)) : null,
  );
  const chartsEl = h("div", { class: "view" });
  const configEl = h("div", { class: "view" });
  const systemEl = h("div", { class: "view" });
  /** @type {SystemView | null} */
  let system = null;
  replace(
    el,
    h(
      "section",
      { class: "page" },
      h("header", { class: "run-head" }, h("div", { class: "run-title" }, h("h1", { text: `Comparing ${runs.length} run${runs.length === 1 ? "" : "s"}` })), legend, missing.length ? h("p", { class: "warn", text: `Not found or not yours: ${missing.join(", ")}` }) : null, tabs),
      chartsEl,
      configEl,
      systemEl,
    ),
  );
  const metrics = Object.fromEntries(runs.map((r) => [r.id, r.metrics || []]));
  const board = new Board(chartsEl, { runs, keys: [...keys], prefsKey: sameProject ? `${first.owner}/${first.project}` : "compare", metrics });
  const show = () => {
    const tab = active();
    chartsEl.hidden = tab !== "charts";
    configEl.hidden = tab !== "config";
    systemEl.hidden = tab !== "system";
    if (tab === "system" && !system) system = new SystemView(systemEl, runs, { live: () => runs.some((r) => LIVE_STATES.has(r.state)) });
    for (const a of tabs.children) a.classList.toggle("active", a.getAttribute("href") === "#" + tab);
    if (tab === "config") {
      replace(
        configEl,
        h("div", { class: "overview wide" }, h("section", { class: "card" }, h("h2", { text: "Config" }), compareTable(runs, (r) => flatten(r.config || {}), "No config in these runs.")), h("section", { class: "card" }, h("h2", { text: "Summary" }), compareTable(runs, (r) => Object.entries(r.summary || {}).filter(([k, v]) => !k.includes("#") && !(v && typeof v === "object" && v._type && v._type !== "float")), "No summary values."))),
      );
    }
  };
  window.addEventListener("hashchange", show);
  show();

  // One event stream per project, not per run: a browser holds at most 6 connections per
  // server (HTTP/1.1), and 20 live runs must not starve the page's own requests. The
  // project stream carries every run's rows, tagged with the run id.
  const live = runs.filter((r) => LIVE_STATES.has(r.state));
  const showLive = () => board.setLive(runs.some((x) => x.state === "running") ? "live" : runs.some((x) => LIVE_STATES.has(x.state)) ? "silent" : null);
  showLive();
  /** @type {Map<string, {owner: string, project: string, ids: Set<string>}>} */
  const byProject = new Map();
  for (const r of live) {
    const key = `${r.owner}/${r.project}`;
    if (!byProject.has(key)) byProject.set(key, { owner: r.owner, project: r.project, ids: new Set() });
    /** @type {{ids: Set<string>}} */ (byProject.get(key)).ids.add(r.id);
  }
  // A shared page reaches its runs, never their project: one stream per run there.
  const streams = shareToken ? live.slice(0, MAX_STREAMS).map((r) => ({ path: `/runs/${seg(r.id)}/events${qs({ after_seq: r.acked_seq })}`, ids: new Set([r.id]) })) : [...byProject.values()].slice(0, MAX_STREAMS).map(({ owner, project, ids }) => ({ path: `/projects/${seg(owner)}/${seg(project)}/events`, ids }));
  for (const { path, ids } of streams) {
    const stream = follow(path, {
      rows: (data) => {
        if (ids.has(data.run_id)) board.appendRows(data.run_id, data.rows);
      },
      run: (obj) => {
        const r = runs.find((x) => x.id === obj.id);
        if (!r || !ids.has(r.id)) return;
        Object.assign(r, obj);
        const item = legend.querySelector(`[data-run="${CSS.escape(r.id)}"] .state-slot`);
        if (item) replace(item, stateBadge(obj.state));
        if (!LIVE_STATES.has(obj.state)) {
          ids.delete(r.id);
          if (!ids.size) stream.close();
        }
        showLive();
      },
    });
  }
}
