// @ts-check
// What the machine did: the System view (system metrics on a time axis, one chart per
// key, GPUs grouped per device; several runs overlaid on the compare page), the Logs view
// (console output, stderr marked, live, searchable, downloadable) and the environment
// card of the Overview.

import { api, apiUrl, follow, qs, seg } from "./api.js";
import { Chart } from "./chart.js";
import { debounce, h, icon, replace } from "./dom.js";
import { fmtDateTime } from "./lib/format.js";
import { Series } from "./lib/series.js";

const SYSTEM_SAMPLES = 600;
const SYSTEM_REFRESH_MS = 15000; // a live run's system charts are fetched again this often
const LOG_TAIL = 2000; // lines shown at first (the end of the log)
const LOG_MAX_LINES = 5000; // lines kept on the page; the download has them all

/** Titles of the groups of system keys, by the key's first part. */
/**
 * A series that has points (the runs without one are left out of a chart).
 * @param {Series | undefined} s
 * @returns {s is Series}
 */
const hasPoints = (s) => Boolean(s && s.n);
const GROUPS = /** @type {Record<string, string>} */ ({ cpu: "CPU", memory: "Memory", disk: "Disk", network: "Network", proc: "Process" });
/** Units shown after a key's title, by the key's last part. */
const UNITS = /** @type {[RegExp, string][]} */ ([
  [/percent$|util$/, "%"],
  [/_mb$/, "MiB"],
  [/_gb$/, "GiB"],
  [/_c$/, "°C"],
  [/_w$/, "W"],
  [/_mhz$/, "MHz"],
]);

/**
 * The group of a system key: "CPU", "GPU 0", ...
 * @param {string} key
 */
export function systemGroup(key) {
  const parts = key.split(".");
  if (parts[0] === "gpu" && parts.length > 2) return `GPU ${parts[1]}`;
  return GROUPS[parts[0]] || parts[0];
}

/** @param {string} key */
function unitOf(key) {
  for (const [re, unit] of UNITS) if (re.test(key)) return unit;
  return "";
}

/**
 * The System view: charts of a run's (or several runs') system series on a time axis.
 * @typedef {{id: string, name: string, color: string, started_at: number, state?: string, rank?: number}} SystemRun
 */
export class SystemView {
  /**
   * @param {HTMLElement} el
   * @param {SystemRun[]} runs
   * @param {{live?: () => boolean}} [options] live: whether to keep refreshing
   */
  constructor(el, runs, options = {}) {
    this.el = el;
    this.runs = runs;
    this.live = options.live || (() => false);
    /** @type {Map<string, {chart: Chart, series: Map<string, Series>}>} */
    this.charts = new Map();
    this.xMode = /** @type {"wall" | "relative"} */ (runs.length > 1 ? "relative" : "wall");
    this.grid = h("div", { class: "groups system-groups" });
    this.status = h("p", { class: "muted pad", text: "Loading system metrics…" });
    replace(el, this.status, this.grid);
    this.load();
  }

  async load() {
    const results = await Promise.all(this.runs.map((r) => api(`/runs/${seg(r.id)}/system${qs({ samples: SYSTEM_SAMPLES, rank: r.rank || "" })}`).catch(() => null)));
    let any = false;
    results.forEach((res, i) => {
      if (!res) return;
      for (const [key, obj] of Object.entries(res.series || {})) {
        any = true;
        this._set(key, this.runs[i], obj);
      }
    });
    this.status.hidden = any;
    if (!any) this.status.textContent = "No system metrics. A run samples them every 10 s by default (settings: system_metrics_interval).";
    for (const { chart, series } of this.charts.values()) chart.setSeries(this.runs.map((r) => series.get(r.id)).filter(hasPoints));
    if (this.live()) this.timer = setTimeout(() => this.load(), SYSTEM_REFRESH_MS);
  }

  /**
   * @param {string} key
   * @param {SystemRun} run
   * @param {{time: number[], value: number[], min?: number[], max?: number[]}} obj
   */
  _set(key, run, obj) {
    let entry = this.charts.get(key);
    if (!entry) {
      const group = systemGroup(key);
      let section = /** @type {HTMLElement | null} */ (this.grid.querySelector(`[data-group="${CSS.escape(group)}"] .grid`));
      if (!section) {
        const grid = h("div", { class: "grid" });
        const el = h("section", { class: "group", dataset: { group } }, h("h3", { class: "group-title", text: group }), grid);
        // Groups in a stable order: CPU, Memory, Disk, Network, Process, then GPUs.
        const order = (/** @type {string} */ g) => [...Object.values(GROUPS), "GPU"].findIndex((x) => g.startsWith(x));
        const next = [...this.grid.children].find((c) => order(/** @type {HTMLElement} */ (c).dataset.group || "") > order(group) || (order(/** @type {HTMLElement} */ (c).dataset.group || "") === order(group) && (/** @type {HTMLElement} */ (c).dataset.group || "") > group));
        this.grid.insertBefore(el, next || null);
        section = grid;
      }
      const unit = unitOf(key);
      const plot = h("div", { class: "panel-plot" });
      const panel = h("div", { class: "panel", dataset: { key } }, h("div", { class: "panel-head" }, h("div", { class: "panel-title", title: key, text: unit ? `${key} (${unit})` : key })), plot);
      const keys = [...section.children].map((c) => /** @type {HTMLElement} */ (c).dataset.key || "");
      const before = keys.findIndex((k) => k.localeCompare(key, undefined, { numeric: true }) > 0);
      section.insertBefore(panel, before >= 0 ? section.children[before] : null);
      const chart = new Chart(plot, { xMode: this.xMode });
      chart.setVisible(true);
      entry = { chart, series: new Map() };
      this.charts.set(key, entry);
    }
    const s = new Series(run.id, run.name, run.color);
    s.t0 = run.started_at;
    const n = obj.time.length;
    s.setFromApi({ step: obj.time.map((_, i) => i), time: obj.time, value: obj.value, min: obj.min || obj.value, max: obj.max || obj.value });
    if (n) entry.series.set(run.id, s);
  }

  destroy() {
    clearTimeout(this.timer);
  }
}

/**
 * The Logs view of one run: the end of its console output, stderr marked, live while it
 * runs, searchable (on the server, over the whole log), with a download of all of it.
 */
export class LogsView {
  /**
   * @param {HTMLElement} el
   * @param {any} run
   * @param {{live: () => boolean, rank?: number}} options rank: which process of a distributed run
   */
  constructor(el, run, { live, rank = 0 }) {
    this.el = el;
    this.run = run;
    this.live = live;
    this.rank = rank;
    /** @type {Map<number, HTMLElement>} line id -> element */
    this.lines = new Map();
    /** @type {{close: () => void} | null} */
    this.stream = null;
    this.query = "";
    this.stderrOnly = false;
    /** What the line counts say: of the last load, plus the lines that arrived live. */
    this.counts = { filtered: false, shown: 0, total: 0, dropped: 0 };
    const search = h("input", { type: "search", class: "input", placeholder: "Search the log", "aria-label": "Search the log" });
    search.addEventListener("input", debounce(() => this.search(search.value), 250));
    const errOnly = h("input", { type: "checkbox" });
    errOnly.addEventListener("change", () => {
      this.stderrOnly = errOnly.checked;
      this.reload();
    });
    this.info = h("span", { class: "muted log-info" });
    this.out = h("div", { class: "log", role: "log", "aria-live": "polite" });
    replace(
      el,
      h(
        "div",
        { class: "toolbar" },
        h("label", { class: "search" }, icon("search"), search),
        h("label", { class: "check" }, errOnly, h("span", { text: "stderr only" })),
        this.info,
        h("div", { class: "spacer" }),
        h("a", { class: "button", href: apiUrl(`/runs/${seg(run.id)}/logs.txt${qs({ rank: rank || "" })}`), download: `${run.id}${rank ? "-rank" + rank : ""}-output.log`, text: "Download" }),
      ),
      this.out,
    );
    this.reload();
  }

  /** @param {string} text */
  search(text) {
    this.query = text.trim();
    this.reload();
  }

  async reload() {
    if (this.stream) this.stream.close();
    this.stream = null;
    const filtered = this.query !== "" || this.stderrOnly;
    const res = await api(`/runs/${seg(this.run.id)}/logs${qs({ tail: 1, limit: LOG_TAIL, q: this.query, stream: this.stderrOnly ? "stderr" : "", rank: this.rank || "" })}`);
    this.lines.clear();
    replace(this.out);
    for (const line of res.lines) this.put(line);
    this.counts = { filtered, shown: res.lines.length, total: res.total_lines, dropped: res.dropped_lines || 0 };
    this.showCounts();
    if (!res.lines.length) replace(this.out, h("p", { class: "muted pad", text: filtered ? "No line matches." : "No console output (yet)." }));
    this.out.scrollTop = this.out.scrollHeight;
    if (!filtered && this.live()) {
      this.stream = follow(`/runs/${seg(this.run.id)}/logs/events${qs({ after_seq: res.acked_seq, rank: this.rank || "" })}`, {
        console: (data) => {
          const stick = this.out.scrollTop + this.out.clientHeight >= this.out.scrollHeight - 8;
          for (const line of data.lines) {
            if (line.rank !== this.rank) continue;
            if (!this.lines.has(line.id)) this.counts.total += 1;
            this.put(line);
          }
          this.counts.shown = this.lines.size; // (the oldest lines go past LOG_MAX_LINES)
          this.showCounts();
          if (stick) this.out.scrollTop = this.out.scrollHeight;
          if (!this.live() && this.stream) this.stream.close();
        },
      });
    }
  }

  /** The line counts beside the search box (live lines included). */
  showCounts() {
    const { filtered, shown, total, dropped } = this.counts;
    const parts = [];
    if (filtered) parts.push(`${shown}${shown === LOG_TAIL ? "+" : ""} matching lines`);
    else if (total > shown) parts.push(`the last ${shown} of ${total} lines`);
    else parts.push(`${total} ${total === 1 ? "line" : "lines"}`);
    if (dropped) parts.push(`${dropped} lines over the server's log limit were not kept`);
    this.info.textContent = parts.join(" · ");
  }

  /**
   * Show a line (a line seen before is replaced: a progress bar's newer state).
   * @param {{id: number, time: number, stream: string, text: string}} line
   */
  put(line) {
    const el = h("div", { class: ["log-line", line.stream === "stderr" ? "stderr" : null], title: `${fmtDateTime(line.time)} · ${line.stream}`, dataset: { id: line.id } }, line.text || "\u200b");
    const old = this.lines.get(line.id);
    if (old) {
      old.replaceWith(el);
    } else {
      const empty = this.out.querySelector(":scope > p");
      if (empty) empty.remove();
      // Ids grow with the log; a line from the past goes in its place.
      const last = this.out.lastElementChild;
      if (!last || Number(/** @type {HTMLElement} */ (last).dataset.id) < line.id) this.out.append(el);
      else {
        const after = [...this.out.children].find((c) => Number(/** @type {HTMLElement} */ (c).dataset.id) > line.id);
        this.out.insertBefore(el, after || null);
      }
      while (this.out.childElementCount > LOG_MAX_LINES) {
        const first = /** @type {HTMLElement} */ (this.out.firstElementChild);
        this.lines.delete(Number(first.dataset.id));
        first.remove();
      }
    }
    this.lines.set(line.id, el);
  }

  destroy() {
    if (this.stream) this.stream.close();
  }
}

/**
 * The environment card of the Overview: program, Python, OS, hardware, git, and links to
 * the run's requirements.txt and diff.patch.
 * @param {any} run
 * @param {(entries: [string, unknown][], emptyText: string) => HTMLElement} kvTable
 * @param {(obj: any, prefix?: string) => [string, unknown][]} flatten
 */
export async function environmentCard(run, kvTable, flatten) {
  const card = h("section", { class: "card" }, h("h2", { text: "Environment" }), h("p", { class: "muted pad", text: "Loading…" }));
  const [envRes, filesRes] = await Promise.all([api(`/runs/${seg(run.id)}/environment`).catch(() => null), api(`/runs/${seg(run.id)}/files`).catch(() => null)]);
  const env = envRes && envRes.environment;
  const entries = env ? flatten(env).map(([k, v]) => /** @type {[string, unknown]} */ ([k, Array.isArray(v) ? v.map(String).join(" ") : typeof v === "number" ? String(v) : v])) : [];
  const files = ((filesRes && filesRes.files) || []).filter((/** @type {any} */ f) => f.path === "requirements.txt" || f.path === "diff.patch");
  replace(
    card,
    h("h2", { text: "Environment" }),
    kvTable(entries, "No environment recorded (settings: environment, git, requirements)."),
    files.length ? h("p", { class: "pad env-files" }, files.map((/** @type {any} */ f) => h("a", { class: "button", href: apiUrl(`/runs/${seg(run.id)}/files/${f.path}`), download: f.path, text: f.path }))) : null,
  );
  return card;
}
