// @ts-check
// The chart board of a run page (and of the compare view): a chart for every scalar key,
// grouped by key prefix, for one or several runs.
//
// Speed with 50+ keys of 100k steps each:
// - a chart fetches nothing and draws nothing until it is near the viewport
//   (IntersectionObserver); charts that become visible in the same frame are fetched
//   together, one history request per run for all their keys;
// - the server downsamples (min/max buckets), so a chart receives about one point per
//   pixel column whatever the run's length;
// - live rows are appended to the loaded series only, and redraws are coalesced per frame.

import { api, qs, seg } from "./api.js";
import { Chart } from "./chart.js";
import { debounce, h, icon, prefs, replace } from "./dom.js";
import { STAT_SEP, groupOf, groupOrder } from "./lib/keys.js";
import { BoardMetrics } from "./lib/metrics.js";
import { Series } from "./lib/series.js";
import { numeric } from "./lib/values.js";

/** @typedef {import("./chart.js").ZoomRange} ZoomRange */
/** @typedef {import("./chart-tooltip.js").XMode} XMode */
/** @typedef {"live" | "reconnecting" | "silent"} LiveStatus */

/**
 * A run on the board: its id, name, colour and start time (the relative-time axis).
 * @typedef {{id: string, name: string, color: string, started_at: number, rank?: number}} BoardRun
 */

const UNGROUPED = "Other"; // the heading of keys without a prefix, when other groups exist
const MAX_KEYS_PER_REQUEST = 24;
const LIVE_COMPACT_FACTOR = 4; // compact a live series once it holds 4x the samples asked for
/** @type {Record<LiveStatus, string>} */
const LIVE_TEXT = { live: "Live", reconnecting: "Reconnecting…", silent: "No data lately" };
/** @type {Record<LiveStatus, string>} */
const LIVE_HELP = {
  live: "New points appear as the run logs them.",
  reconnecting: "The live connection dropped; the browser is reconnecting.",
  silent: "The run has sent nothing for a while (crashed?). Points appear if it comes back.",
};

/**
 * A group of charts on the board (a key prefix), with its heading.
 * @typedef {{el: HTMLElement, grid: HTMLElement, count: HTMLElement, headBtn: HTMLButtonElement, panels: Panel[]}} Group
 */

/** One chart: its key, its series per run, its lazy state. */
class Panel {
  /**
   * @param {Board} board
   * @param {string} key
   */
  constructor(board, key) {
    this.board = board;
    this.key = key;
    this.loaded = false;
    this.loading = false;
    /** @type {[BoardRun, number, number, number][]} live points (run, step, time, value) that arrived while the history request was in flight */
    this.pending = [];
    /** @type {Map<string, Series>} run id -> Series (the full range) */
    this.series = new Map();
    /** @type {Map<string, Series> | null} run id -> Series of a zoomed range, or null */
    this.zoomed = null;
    /** @type {object} the latest zoom request (an older answer is dropped) */
    this.zoomToken = {};
    this.logY = prefs.get(`log:${key}`, false);
    /** @type {string | null} the key this one is charted against by default (define_metric's step_metric) */
    this.stepMetric = board.metrics.stepMetric(key);

    const slash = key.indexOf("/");
    const title = h(
      "div",
      { class: "panel-title", title: key },
      slash > 0 ? [h("span", { class: "prefix", text: key.slice(0, slash + 1) }), key.slice(slash + 1)] : key,
      this.stepMetric ? h("span", { class: "panel-axis", title: `Charted against ${this.stepMetric} (define_metric)`, text: ` vs ${this.stepMetric}` }) : null,
    );
    this.logBtn = h("button", { type: "button", class: ["icon-button", this.logY ? "on" : null], title: "Log scale", "aria-pressed": String(this.logY) }, icon("log"), "log");
    this.resetBtn = h("button", { type: "button", class: "icon-button", title: "Reset zoom (or double-click the chart)", hidden: true }, icon("reset"), "reset");
    this.expandBtn = h("button", { type: "button", class: "icon-button", title: "Enlarge" }, icon("expand"));
    this.plotEl = h("div", { class: "panel-plot" });
    this.el = h("div", { class: "panel", dataset: { key }, "aria-busy": "true" }, h("div", { class: "panel-head" }, title, h("div", { class: "panel-tools" }, this.resetBtn, this.logBtn, this.expandBtn)), this.plotEl);
    /** @type {Chart | null} made when the panel first comes into view (50+ panels stay cheap) */
    this.chart = null;
    this.logBtn.addEventListener("click", () => {
      this.logY = !this.logY;
      prefs.set(`log:${key}`, this.logY);
      this.logBtn.classList.toggle("on", this.logY);
      this.logBtn.setAttribute("aria-pressed", String(this.logY));
      if (this.chart) this.chart.setOptions({ logY: this.logY });
    });
    this.resetBtn.addEventListener("click", () => this.chart && this.chart.resetZoom());
    this.expandBtn.addEventListener("click", () => {
      this.el.classList.toggle("enlarged");
      this.el.scrollIntoView({ block: "nearest" });
    });
  }

  /** The panel's chart, made on first use with the board's current options. */
  ensureChart() {
    if (!this.chart) {
      this.chart = new Chart(this.plotEl, {
        ...this.xOptions(),
        smoothing: this.board.smoothing,
        logY: this.logY,
        onZoom: (range) => this.onZoom(range),
        onHover: (x, chart) => this.board.linkHover(x, chart),
      });
      this.chart.setStatus(this.loaded ? null : "Loading…");
      if (this.loaded) this.show();
    }
    return this.chart;
  }

  /** The chart's x axis: the board's choice, except that "step" means this key's
   * step_metric when it has one. */
  xOptions() {
    const metric = this.board.xMode === "step" && this.stepMetric;
    return metric ? { xMode: /** @type {XMode} */ ("metric"), xName: metric } : { xMode: this.board.xMode, xName: "" };
  }

  /** @param {BoardRun} run */
  seriesFor(run) {
    let s = this.series.get(run.id);
    if (!s) {
      s = new Series(run.id, run.name, run.color);
      s.t0 = run.started_at;
      if (this.stepMetric) s.axis = this.board.metrics.axis(this.stepMetric, run);
      this.series.set(run.id, s);
    }
    return s;
  }

  /**
   * Apply a history response's series for one run.
   * @param {BoardRun} run
   * @param {import("./lib/series.js").ApiSeries} obj
   */
  setData(run, obj) {
    this.seriesFor(run).setFromApi(obj);
  }

  finishLoad() {
    this.loaded = true;
    this.loading = false;
    this.el.setAttribute("aria-busy", "false");
    for (const [run, step, time, value] of this.pending) this.appendPoint(run, step, time, value);
    this.pending = [];
    this.show();
  }

  /** Push what to draw to the chart (zoomed series while zoomed). */
  show() {
    if (!this.chart) return;
    const source = this.zoomed || this.series;
    const list = /** @type {Series[]} */ (this.board.runs.map((r) => source.get(r.id)).filter((s) => s && s.n));
    this.chart.setSeries(list);
    this.chart.setStatus(list.length ? null : "No numeric values");
  }

  /**
   * @param {BoardRun} run
   * @param {number} step
   * @param {number} time
   * @param {number} value
   */
  appendPoint(run, step, time, value) {
    if (this.loading) {
      this.pending.push([run, step, time, value]);
      return;
    }
    if (!this.loaded) return; // the history request, when it comes, includes this point
    const s = this.seriesFor(run);
    if (!s.append(step, time, value)) return;
    if (s.n > this.board.samples * LIVE_COMPACT_FACTOR) s.compact();
    if (!this.zoomed && this.chart) {
      if (this.chart.series.indexOf(s) < 0) this.show();
      else this.chart.invalidate();
    }
  }

  /** @param {ZoomRange | null} range */
  async onZoom(range) {
    this.resetBtn.hidden = !range;
    if (!range) {
      this.zoomed = null;
      this.show();
      return;
    }
    if (!range.steps) return;
    const [lo, hi] = range.steps;
    /** @type {Map<string, Series>} */
    const zoomed = new Map();
    const token = (this.zoomToken = {});
    await Promise.all(
      this.board.runs.map(async (run) => {
        const q = qs({ keys: this.key, min_step: lo, max_step: hi, samples: this.board.samples, rank: run.rank || "" });
        const res = await api(`/runs/${seg(run.id)}/history${q}`).catch(() => null);
        if (!res || !res.series[this.key]) return;
        const s = new Series(run.id, run.name, run.color);
        s.t0 = run.started_at;
        if (this.stepMetric) s.axis = this.board.metrics.axis(this.stepMetric, run);
        zoomed.set(run.id, s.setFromApi(res.series[this.key]));
      }),
    );
    if (token !== this.zoomToken || !this.chart || !this.chart.zoom) return; // reset or re-zoomed meanwhile
    this.zoomed = zoomed;
    this.show();
  }
}

/**
 * The board. `runs`: [{id, name, color, started_at}]. `keys`: numeric keys to chart.
 * `prefsKey` scopes remembered choices (collapsed groups) to a project. `metrics`: each
 * run's define_metric definitions (run id -> definitions): a key with a step_metric is
 * charted against it by default, and hidden keys are left out unless asked for.
 */
export class Board {
  /**
   * @param {HTMLElement} container
   * @param {{runs: BoardRun[], keys: string[], prefsKey: string, metrics?: Record<string, import("./lib/metrics.js").MetricDef[]>}} options
   */
  constructor(container, { runs, keys, prefsKey, metrics = {} }) {
    this.container = container;
    this.runs = runs;
    this.prefsKey = prefsKey;
    /** the runs' definitions, and the step_metrics' series (the x of the keys charted against them) */
    this.metrics = new BoardMetrics(runs.map((r) => metrics[r.id] || []));
    this.showHidden = false;
    this.hiddenCount = h("span", { class: "hidden-count" });
    // the toolbar's "Hidden (n)" toggle, shown when definitions hide some keys
    this.hiddenToggle = h("label", { class: "check hidden-toggle", title: "Keys that define_metric(..., hidden=True) leaves out of the charts", hidden: true }, h("input", { type: "checkbox" }), h("span", {}, "Hidden ", this.hiddenCount));
    /** @type {Map<string, Panel>} */
    this.panels = new Map();
    /** @type {Map<string, Group>} */
    this.groups = new Map();
    this.xMode = /** @type {XMode} */ (prefs.get("xMode", "step"));
    this.smoothing = prefs.get("smoothing", 0);
    /** @type {RegExp | string} a regex, or else lowercase text */
    this.filter = "";
    this.filterText = "";
    this.samples = 600;
    this.samplesSet = false;
    /** @type {Set<Panel>} */
    this.queue = new Set();
    this.flushScheduled = false;
    /** @type {Set<string>} */
    this.collapsed = new Set(prefs.get(`collapsed:${prefsKey}`, /** @type {string[]} */ ([])));
    /** @type {LiveStatus | null} */
    this.liveStatus = null;
    this.liveLabel = h("span", { text: "Live" });
    this.liveEl = h("span", { class: "live-pill", hidden: true, role: "status" }, h("span", { class: "pulse" }), this.liveLabel);

    this.observer = new IntersectionObserver((entries) => this._onIntersect(entries), { rootMargin: "300px 0px" });
    this.toolbar = this._toolbar();
    this.groupsEl = h("div", { class: "groups" });
    this.emptyEl = h("div", { class: "empty", hidden: true });
    replace(container, this.toolbar, this.emptyEl, this.groupsEl);
    for (const key of keys) this.addKey(key);
    this._updateEmpty();
    this._primeFirstScreen();
  }

  /** Start fetching the charts already on screen now, instead of a frame later when the
   * IntersectionObserver first reports (that frame is most of a cold page's wait). */
  _primeFirstScreen() {
    const limit = window.innerHeight + 300;
    for (const panel of this.panels.values()) {
      if (panel.el.hidden) continue;
      const r = panel.el.getBoundingClientRect();
      if (r.height === 0 || r.top > limit || r.bottom < -300) continue; // hidden or off screen
      this._want(panel);
    }
  }

  /** @param {Panel} panel */
  _want(panel) {
    panel.ensureChart().setVisible(true);
    if (panel.loaded || panel.loading || this.queue.has(panel)) return;
    if (!this.samplesSet) {
      this.samples = Math.max(100, Math.min(2000, Math.round(panel.plotEl.getBoundingClientRect().width || 600)));
      this.samplesSet = true;
    }
    this.queue.add(panel);
    this._scheduleFlush();
  }

  _toolbar() {
    const filter = h("input", { type: "search", class: "input", placeholder: "Filter charts (regex)", "aria-label": "Filter charts" });
    filter.addEventListener("input", debounce(() => this.setFilter(filter.value), 120));
    const xSel = h(
      "select",
      { class: "input", "aria-label": "X axis" },
      [
        ["step", "Step"],
        ["relative", "Relative time"],
        ["wall", "Wall time"],
      ].map(([v, t]) => h("option", { value: v, selected: v === this.xMode, text: `x: ${t}` })),
    );
    xSel.addEventListener("change", () => {
      this.xMode = /** @type {XMode} */ (xSel.value);
      prefs.set("xMode", this.xMode);
      for (const p of this.panels.values()) {
        p.zoomed = null;
        p.resetBtn.hidden = true;
        if (p.chart) p.chart.setOptions(p.xOptions());
        p.show();
      }
    });
    const smoothOut = h("output", { class: "smooth-value", text: this.smoothing.toFixed(2) });
    const smooth = h("input", { type: "range", min: "0", max: "0.99", step: "0.01", value: String(this.smoothing), "aria-label": "Smoothing" });
    smooth.addEventListener("input", () => {
      this.smoothing = Number(smooth.value);
      smoothOut.textContent = this.smoothing.toFixed(2);
      prefs.set("smoothing", this.smoothing);
      for (const p of this.panels.values()) if (p.chart) p.chart.setOptions({ smoothing: this.smoothing });
    });
    const showHidden = /** @type {HTMLInputElement} */ (this.hiddenToggle.querySelector("input"));
    showHidden.addEventListener("change", () => {
      this.showHidden = showHidden.checked;
      this.setFilter(this.filterText || "");
    });
    const collapseAll = h("button", { type: "button", class: "button ghost", text: "Collapse all" });
    collapseAll.addEventListener("click", () => {
      const anyOpen = [...this.groups.keys()].some((g) => !this.collapsed.has(g));
      for (const name of this.groups.keys()) this.setCollapsed(name, anyOpen);
      collapseAll.textContent = anyOpen ? "Expand all" : "Collapse all";
    });
    return h(
      "div",
      { class: "toolbar sticky" },
      h("label", { class: "search" }, icon("search"), filter),
      xSel,
      h("label", { class: "smooth", title: "Exponential moving average (debiased)" }, h("span", { text: "Smoothing" }), smooth, smoothOut),
      h("div", { class: "spacer" }),
      this.liveEl,
      this.hiddenToggle,
      collapseAll,
    );
  }

  /**
   * The live indicator, exactly as things are: "live" (a running run, stream connected:
   * new points appear), "reconnecting" (the stream dropped; the browser retries), "silent"
   * (the stream is up but the run sends nothing: crashed, it may come back), or null
   * (nothing is live: finished runs, or a stream that was closed). `true`/`false` are
   * accepted for "live" and null.
   */
  /** @param {LiveStatus | boolean | null} status */
  setLive(status) {
    const s = status === true ? "live" : status || null;
    this.liveStatus = s;
    this.liveEl.hidden = !s;
    if (!s) return;
    this.liveEl.classList.toggle("warn", s !== "live");
    this.liveLabel.textContent = LIVE_TEXT[s];
    this.liveEl.title = LIVE_HELP[s];
  }

  /**
   * Add a chart for a key (new keys also arrive live).
   * @param {string} key
   * @returns {Panel}
   */
  addKey(key) {
    const known = this.panels.get(key);
    if (known) return known;
    const panel = new Panel(this, key);
    this.panels.set(key, panel);
    const name = groupOf(key);
    let group = this.groups.get(name);
    if (!group) {
      group = this._group(name);
      // keep groups in their display order
      const names = [...this.groups.keys(), name].sort(groupOrder);
      this.groups.set(name, group);
      const next = names[names.indexOf(name) + 1];
      this.groupsEl.insertBefore(group.el, next !== undefined ? /** @type {Group} */ (this.groups.get(next)).el : null); // "" is a group too
    }
    this._updateUngroupedHead();
    group.panels.push(panel);
    group.panels.sort((a, b) => a.key.localeCompare(b.key, undefined, { numeric: true }));
    const i = group.panels.indexOf(panel);
    group.grid.insertBefore(panel.el, group.panels[i + 1] ? group.panels[i + 1].el : null);
    this._applyFilter(panel);
    this._countGroup(group);
    this._updateHiddenToggle();
    this.observer.observe(panel.el);
    return panel;
  }

  /**
   * @param {string} name
   * @returns {Group}
   */
  _group(name) {
    const collapsed = this.collapsed.has(name) || (name.includes(STAT_SEP) && !prefs.get(`opened:${this.prefsKey}:${name}`, false));
    if (collapsed) this.collapsed.add(name);
    const count = h("span", { class: "group-count" });
    const label = name.includes(STAT_SEP) ? name.replace(` ${STAT_SEP} stats`, " · statistics") : name || UNGROUPED;
    const headBtn = h("button", { type: "button", class: "group-head", "aria-expanded": String(!collapsed), title: name.includes(STAT_SEP) ? "Statistics of histograms and tensors (min, max, mean, std, norm, counts)" : undefined }, icon("chevron"), h("span", { class: "group-name", text: label }), count);
    const grid = h("div", { class: "grid" });
    const el = h("section", { class: ["group", collapsed ? "collapsed" : null], dataset: { group: name } }, headBtn, grid);
    headBtn.addEventListener("click", () => this.setCollapsed(name, !this.collapsed.has(name)));
    return { el, grid, count, headBtn, panels: [] };
  }

  /** Keys without a prefix get no heading when they are the only plain group (a run that
   * logs `loss` and `acc`), and "Other" beside `train`, `val`... */
  _updateUngroupedHead() {
    const plain = this.groups.get("");
    if (!plain) return;
    const alone = ![...this.groups.keys()].some((g) => g !== "" && !g.includes(STAT_SEP));
    plain.headBtn.hidden = alone;
    plain.el.classList.toggle("headless", alone);
    if (alone && this.collapsed.has("")) this.setCollapsed("", false);
  }

  /**
   * @param {string} name
   * @param {boolean} collapsed
   */
  setCollapsed(name, collapsed) {
    const group = this.groups.get(name);
    if (!group) return;
    if (collapsed) this.collapsed.add(name);
    else this.collapsed.delete(name);
    if (name.includes(STAT_SEP)) prefs.set(`opened:${this.prefsKey}:${name}`, !collapsed);
    prefs.set(`collapsed:${this.prefsKey}`, [...this.collapsed].filter((n) => !n.includes(STAT_SEP)));
    group.el.classList.toggle("collapsed", collapsed);
    group.headBtn.setAttribute("aria-expanded", String(!collapsed));
  }

  /** @param {string} text a regex (case-insensitive), or plain text when it is not one */
  setFilter(text) {
    this.filterText = text;
    let re = null;
    try {
      re = text ? new RegExp(text, "i") : null;
    } catch {
      re = null;
    }
    this.filter = re || text.toLowerCase();
    for (const p of this.panels.values()) this._applyFilter(p);
    for (const g of this.groups.values()) {
      const shown = this._countGroup(g);
      if (text && shown) g.el.classList.remove("collapsed");
      else g.el.classList.toggle("collapsed", this.collapsed.has(/** @type {string} */ (g.el.dataset.group)));
    }
    this._updateEmpty();
  }

  /**
   * A group's count ("3", or "2 of 3" when some are filtered or hidden); a group with
   * nothing shown is hidden. Returns how many are shown.
   * @param {Group} g
   */
  _countGroup(g) {
    const shown = g.panels.filter((p) => !p.el.hidden).length;
    g.el.hidden = shown === 0;
    g.count.textContent = shown === g.panels.length ? String(shown) : `${shown} of ${g.panels.length}`;
    return shown;
  }

  /** @param {Panel} panel */
  _applyFilter(panel) {
    const f = this.filter;
    const hidden = !this.showHidden && this.metrics.hidden(panel.key);
    panel.el.hidden = hidden || (f ? (f instanceof RegExp ? !f.test(panel.key) : !panel.key.toLowerCase().includes(f)) : false);
  }

  /** The toolbar's "Hidden (n)" toggle: shown when definitions hide some keys. */
  _updateHiddenToggle() {
    const n = [...this.panels.keys()].filter((k) => this.metrics.hidden(k)).length;
    this.hiddenToggle.hidden = n === 0;
    this.hiddenCount.textContent = `(${n})`;
  }

  _updateEmpty() {
    const any = [...this.panels.values()].some((p) => !p.el.hidden);
    this.emptyEl.hidden = any;
    if (!any) replace(this.emptyEl, h("div", { class: "empty-title", text: this.panels.size ? "No chart matches the filter" : "No scalar metrics yet" }), h("p", { text: this.panels.size ? "Clear the filter to see every chart." : "Charts appear as soon as the run logs numbers, e.g. gradexp.log({\"loss\": 0.3})." }));
  }

  // --- lazy loading ---

  /** @param {IntersectionObserverEntry[]} entries */
  _onIntersect(entries) {
    for (const entry of entries) {
      const panel = this.panels.get(/** @type {string} */ (/** @type {HTMLElement} */ (entry.target).dataset.key));
      if (!panel) continue;
      if (entry.isIntersecting) this._want(panel);
      else if (panel.chart) panel.chart.setVisible(false);
    }
  }

  _scheduleFlush() {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // After the current task: every chart that became visible in it joins one request.
    queueMicrotask(() => {
      this.flushScheduled = false;
      this._flush();
    });
  }

  async _flush() {
    const panels = [...this.queue];
    this.queue.clear();
    if (!panels.length) return;
    for (const p of panels) p.loading = true;
    const chunks = [];
    for (let i = 0; i < panels.length; i += MAX_KEYS_PER_REQUEST) chunks.push(panels.slice(i, i + MAX_KEYS_PER_REQUEST));
    await Promise.all(
      chunks.map(async (chunk) => {
        const keys = chunk.map((p) => p.key);
        // The step_metrics these keys are charted against, fetched with them once.
        /** @type {string[]} */
        const axes = [];
        for (const p of chunk) if (p.stepMetric && !this.metrics.axes.has(p.stepMetric) && !axes.includes(p.stepMetric)) axes.push(p.stepMetric);
        for (const m of axes) this.metrics.axes.set(m, new Map());
        const results = await Promise.all(
          this.runs.map((run) =>
            api(`/runs/${seg(run.id)}/history${qs({ keys: [...keys, ...axes], samples: this.samples, rank: run.rank || "" })}`)
              .then((res) => [run, res])
              .catch((/** @type {Error} */ err) => [run, null, err]),
          ),
        );
        for (const [run, res] of results) {
          for (const m of axes) if (res && res.series[m]) this.metrics.axis(m, run).setFromApi(res.series[m]);
        }
        for (const p of chunk) {
          let failed = null;
          for (const [run, res, err] of results) {
            if (res && res.series[p.key]) p.setData(run, res.series[p.key]);
            else if (err) failed = err;
          }
          p.finishLoad();
          if (failed && !p.series.size && p.chart) p.chart.setStatus(`Could not load: ${failed.message}`);
        }
      }),
    );
  }

  // --- live ---

  /**
   * Rows of one run from its event stream: append numeric values, add new keys' charts.
   * @param {string} runId
   * @param {Record<string, any>[]} rows
   */
  appendRows(runId, rows) {
    const run = this.runs.find((r) => r.id === runId);
    if (!run) return;
    for (const row of rows) {
      const step = row._step;
      const time = row._timestamp;
      for (const key in row) {
        if (key.charCodeAt(0) === 95 && (key === "_step" || key === "_seq" || key === "_timestamp")) continue;
        const value = row[key];
        const v = numeric(value);
        if (v !== null) {
          const axis = this.metrics.axes.get(key);
          if (axis) {
            const s = axis.get(run.id);
            if (s) s.append(step, time, v); // before the points charted against it
          }
          const panel = this.panels.get(key) || this.addKey(key);
          panel.appendPoint(run, step, time, v);
          continue;
        }
        // histogram/tensor statistics chart as "K#stat" series
        if (value && typeof value === "object" && (value._type === "histogram" || value._type === "tensor")) {
          for (const stat of ["min", "max", "mean", "std", "norm", "count", "nan", "inf", "ninf", "zeros"]) {
            const sv = numeric(value[stat]);
            if (sv === null) continue;
            const k = key + STAT_SEP + stat;
            const panel = this.panels.get(k) || this.addKey(k);
            panel.appendPoint(run, step, time, sv);
          }
        }
      }
    }
    this._updateEmpty();
  }

  /** Crosshair linking: every other chart shows its crosshair at the hovered chart's x (the
   * step, or time, of the point under it). Charts off screen just remember it. */
  /**
   * @param {number | null} x
   * @param {Chart} source
   */
  linkHover(x, source) {
    const { xMode, xName } = source.opts;
    for (const p of this.panels.values()) {
      // only charts on the same x axis: an epoch is not a step
      if (p.chart && p.chart !== source && p.chart.opts.xMode === xMode && (p.chart.opts.xName || "") === (xName || "")) p.chart.setLinkedX(x);
    }
  }
}
