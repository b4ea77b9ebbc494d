// `/r/{id}/gradients`: the gradient explorer, for runs with histograms (gradexp.watch).
//
// - A table of parameters with the latest gradient norm, the weight norm, their ratio,
//   non-finite counts and flags (non-finite, exploding, vanishing), sorted so that the
//   problem layers come first. Latest values come from the run's summary (the last
//   histogram of each key, statistics included); "ever non-finite" from the max of the
//   K#nan / K#inf / K#ninf series over the whole run (one bucket: samples=1).
// - Per parameter, lazily when scrolled into view: a step x value heatmap of the
//   distribution over time (every histogram resampled onto one value grid), percentile
//   lines, a step slider with the histogram at that step and its statistics, and a chart
//   of percentile bands.

import { api, follow, qs, seg, numeric } from "../api.js";
import { Chart, Series, niceTicks } from "../chart.js";
import { emptyState, h, replace } from "../dom.js";
import { fmtCompact, fmtNum, fmtTick } from "../format.js";
import { fitCanvas, lut, paintGrid, percentiles, resample } from "../heatmap.js";
import { setCrumbs } from "../layout.js";
import { runHeader } from "./run.js";

const STAT_SEP = "#";
const HEATMAP_STEPS = 200; // histograms fetched per parameter
const CELLS = 64; // value cells per heatmap column
const KEYS_PER_REQUEST = 40;
const QS = [0.05, 0.25, 0.5, 0.75, 0.95];

// Flag thresholds (docs/ui.md explains them).
export const EXPLODING_VS_MEDIAN = 100; // norm >= 100x the median norm across parameters
export const EXPLODING_VS_OWN = 10; // or >= 10x this parameter's own median over time
export const VANISHING_ABS = 1e-7; // norm <= 1e-7
export const VANISHING_VS_MEDIAN = 1e-4; // or <= 1e-4 x the median across parameters

const SEVERITY = { nonfinite: 3, exploding: 2, vanishing: 1 };
const WATCH_ALL = 'gradexp.watch(model, log="all")';
const WEIGHTS_HELP = `Not logged: this parameter has no weight histogram (parameters/<name>). Log weights too with ${WATCH_ALL}.`;
const FLAG_TEXT = { nonfinite: "non-finite", exploding: "exploding", vanishing: "vanishing" };
const FLAG_HELP = {
  nonfinite: "NaN or ±inf values in this gradient (now or earlier in the run)",
  exploding: `Norm ≥ ${EXPLODING_VS_MEDIAN}× the median across parameters, or ≥ ${EXPLODING_VS_OWN}× its own median over time`,
  vanishing: `Norm ≤ ${VANISHING_ABS} or ≤ ${VANISHING_VS_MEDIAN}× the median across parameters`,
};

function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** Split histogram keys into sections: "gradients/x" -> section gradients, name x. */
function sections(keys) {
  const out = new Map();
  for (const key of keys) {
    const slash = key.indexOf("/");
    const section = slash > 0 ? key.slice(0, slash) : "histograms";
    const name = slash > 0 ? key.slice(slash + 1) : key;
    if (!out.has(section)) out.set(section, []);
    out.get(section).push({ key, name });
  }
  const order = ["gradients", "parameters"];
  return new Map([...out.entries()].sort(([a], [b]) => ((order.indexOf(a) + 1 || 9) - (order.indexOf(b) + 1 || 9)) || a.localeCompare(b)));
}

async function historyMany(runId, keys, samples) {
  const series = {};
  for (let i = 0; i < keys.length; i += KEYS_PER_REQUEST) {
    const res = await api(`/runs/${seg(runId)}/history${qs({ keys: keys.slice(i, i + KEYS_PER_REQUEST), samples })}`);
    Object.assign(series, res.series);
  }
  return series;
}

/** The learning rate in a run's config, if it names one plainly (for update / weight). */
export function learningRate(config) {
  const c = config || {};
  for (const v of [c.lr, c.learning_rate, c.optimizer && c.optimizer.lr, c.optim && c.optim.lr]) {
    if (typeof v === "number" && Number.isFinite(v) && v > 0) return v;
  }
  return null;
}

/** The parameter table's rows: latest statistics, ratios and flags. `lr` (or null) turns
 * ‖g‖/‖w‖ into SGD's update-to-weight ratio lr·‖g‖/‖w‖.
 *
 * Missing is not NaN: a value that was never logged (no `parameters/<name>` histogram, so
 * no weight norm and no ratio) is `null` and shows as "—"; NaN means a logged value really
 * was NaN (a broken gradient) and is flagged. */
export function analyse(params, summary, ever, ownMedians, lr = null) {
  const rows = params.map(({ key, name }) => {
    const g = summary[key] || {};
    const w = summary[`parameters/${name}`] || null;
    const nonfinite = (numeric(g.nan) || 0) + (numeric(g.inf) || 0) + (numeric(g.ninf) || 0);
    const count = numeric(g.count);
    // The norm is over the finite values: of a gradient with none, it is NaN, not 0.
    const norm = count && nonfinite >= count ? NaN : numeric(g.norm);
    const wnorm = w ? numeric(w.norm) : null;
    let ratio = null;
    if (norm !== null && wnorm !== null) ratio = wnorm === 0 ? (norm === 0 ? 0 : Infinity) : ((lr || 1) * norm) / wnorm;
    return {
      key,
      name,
      norm,
      wnorm,
      ratio,
      nonfinite,
      everNonfinite: ever[key] || 0,
      count,
      flags: [],
    };
  });
  const med = median(rows.map((r) => r.norm ?? NaN));
  for (const r of rows) {
    if (r.nonfinite > 0 || r.everNonfinite > 0 || (r.norm !== null && !Number.isFinite(r.norm) && r.count)) r.flags.push("nonfinite");
    const own = ownMedians[r.key];
    if (Number.isFinite(r.norm) && ((med > 0 && r.norm >= EXPLODING_VS_MEDIAN * med && rows.length > 2) || (own > 0 && r.norm >= EXPLODING_VS_OWN * own))) r.flags.push("exploding");
    if (Number.isFinite(r.norm) && (r.norm <= VANISHING_ABS || (med > 0 && r.norm <= VANISHING_VS_MEDIAN * med))) r.flags.push("vanishing");
    r.severity = Math.max(0, ...r.flags.map((f) => SEVERITY[f]));
  }
  return rows;
}

export async function mountGradients(el, runId) {
  const [run, keyList] = await Promise.all([api(`/runs/${seg(runId)}`), api(`/runs/${seg(runId)}/keys`)]);
  setCrumbs([{ text: "Projects", href: "/" }, { text: run.project, href: `/p/${seg(run.owner)}/${seg(run.project)}` }, { text: run.name, href: `/r/${seg(run.id)}` }, { text: "Gradients" }]);
  const kinds = keyList.keys.map((k) => k.kind);
  const head = runHeader(run, "gradients", { hasMedia: kinds.includes("tensor") || kinds.includes("image"), hasGradients: true });
  const histKeys = keyList.keys.filter((k) => k.kind === "histogram").map((k) => k.key);
  const content = h("div", { class: "view" });
  replace(el, h("section", { class: "page" }, head.el, content));
  if (!histKeys.length) {
    replace(
      content,
      emptyState(
        "No histograms in this run",
        "Watch a model to record gradient and weight histograms every few steps:",
        h("pre", { class: "code" }, 'gradexp.watch(model, log="all", log_freq=100)'),
      ),
    );
    if (run.state === "running") {
      // A live run may start logging histograms later: draw the explorer when it does.
      const stream = follow(`/runs/${seg(run.id)}/events${qs({ after_seq: run.acked_seq })}`, {
        rows: (data) => {
          const any = data.rows.some((r) => Object.values(r).some((v) => v && typeof v === "object" && v._type === "histogram"));
          if (any) {
            stream.close();
            mountGradients(el, runId);
          }
        },
        run: (r) => {
          head.update(r);
          if (r.state !== "running" && r.state !== "crashed") stream.close();
        },
      });
    }
    return;
  }
  const secs = sections(histKeys);
  let current = secs.has("gradients") ? "gradients" : [...secs.keys()][0];
  const tabBar = h("div", { class: "segmented", role: "tablist" });
  const tableSlot = h("div", { class: "card flush table-wrap" });
  const cardsEl = h("div", { class: "hist-cards" });
  const legend = h(
    "div",
    { class: "flag-legend muted" },
    Object.keys(FLAG_TEXT).map((f) => h("span", { title: FLAG_HELP[f] }, h("span", { class: ["flag", "flag-" + f], text: FLAG_TEXT[f] }), " ", FLAG_HELP[f])),
  );
  // Without weight histograms there is no weight norm nor update / weight: say how to get them.
  const weightsHint = !secs.has("parameters") ? h("p", { class: "hint" }, "Weight norm and update / weight need the weights' histograms too: ", h("code", { text: WATCH_ALL }), ".") : null;
  replace(content, h("div", { class: "toolbar" }, tabBar, h("div", { class: "spacer" }), h("span", { class: "muted", text: `${histKeys.length} histogram keys` })), tableSlot, weightsHint, legend, cardsEl);

  // With a learning rate in the config, the ratio column is SGD's update-to-weight ratio.
  const lr = learningRate(run.config);
  const ratioHelp = lr
    ? `lr · ‖gradient‖ / ‖weight‖ with lr = ${lr} from the config: the size of an SGD step relative to the weights (around 1e-3 is typical; momentum and Adam change it)`
    : "‖gradient‖ / ‖weight‖ (no learning rate in the config: multiply by it for SGD's update-to-weight ratio)";
  let sort = { col: "severity", desc: true };
  let rows = [];
  let observer = null;
  const cards = new Map();

  async function showSection(name, { live = false } = {}) {
    current = name;
    replace(
      tabBar,
      [...secs.keys()].map((s) =>
        h("button", { type: "button", role: "tab", class: ["seg", s === current ? "active" : null], "aria-selected": String(s === current), text: `${s} (${secs.get(s).length})`, on: { click: () => showSection(s) } }),
      ),
    );
    const params = secs.get(name);
    if (!live) replace(tableSlot, h("p", { class: "muted pad", text: "Reading statistics…" }));
    const statKeys = params.flatMap((p) => [`${p.key}${STAT_SEP}nan`, `${p.key}${STAT_SEP}inf`, `${p.key}${STAT_SEP}ninf`]);
    const normKeys = params.map((p) => `${p.key}${STAT_SEP}norm`);
    let everSeries = {};
    let normSeries = {};
    try {
      [everSeries, normSeries] = await Promise.all([historyMany(run.id, statKeys, 1), historyMany(run.id, normKeys, 64)]);
    } catch {
      /* the table still shows the latest values */
    }
    const ever = {};
    for (const p of params) {
      let worst = 0;
      for (const stat of ["nan", "inf", "ninf"]) {
        const s = everSeries[`${p.key}${STAT_SEP}${stat}`];
        if (s && s.max.length) worst += Math.max(0, ...s.max.map((x) => numeric(x) || 0));
      }
      ever[p.key] = worst;
    }
    const ownMedians = {};
    for (const p of params) {
      const s = normSeries[`${p.key}${STAT_SEP}norm`];
      ownMedians[p.key] = s ? median(s.value.map((x) => numeric(x))) : NaN;
    }
    rows = analyse(params, run.summary || {}, ever, ownMedians, lr);
    rows.spark = normSeries;
    renderTable();
    if (!live) {
      renderCards(params);
      return;
    }
    // Live: the table is redrawn, but a card someone may be reading only offers an update.
    for (const [key, card] of cards) card.markStale(rows.find((r) => r.key === key));
  }

  function sorted() {
    const dir = sort.desc ? -1 : 1;
    const val = (r) => (sort.col === "name" ? r.name : r[sort.col]);
    // Numbers by value; NaN and ±inf beyond the largest (a broken value is the top
    // problem); missing values (never logged) last in both directions.
    const key = (v) => (v === null || v === undefined ? null : Number.isFinite(v) ? v : Infinity);
    return rows.slice().sort((a, b) => {
      if (sort.col === "severity" && a.severity !== b.severity) return (a.severity - b.severity) * dir;
      const x = val(a);
      const y = val(b);
      if (typeof x === "string") return x.localeCompare(y, undefined, { numeric: true }) * dir;
      const fx = key(x);
      const fy = key(y);
      if (fx === null || fy === null) {
        if (fx !== fy) return fx === null ? 1 : -1;
      } else if (fx !== fy) {
        return (fx > fy ? 1 : -1) * dir;
      }
      return sort.col === "severity" ? (b.norm || 0) - (a.norm || 0) : 0;
    });
  }

  /** A number cell: "—" (with what to log) when the value was never logged, a flagged
   * NaN/inf when it was logged broken, else the number (full precision on hover). */
  function numCell(v, missingHelp, title) {
    if (v === null || v === undefined) return h("td", { class: ["num", "missing"], title: missingHelp, text: "—" });
    if (!Number.isFinite(v)) return h("td", { class: ["num", "bad"], title: "The logged value is not finite", text: fmtNum(v) });
    return h("td", { class: "num", title: title ? `${title}\n${fmtNum(v, 10)}` : fmtNum(v, 10), text: fmtNum(v) });
  }

  function renderTable() {
    const th = (col, label, cls) => {
      const active = sort.col === col;
      return h(
        "th",
        { class: ["sortable", cls, active ? "sorted" : null], "aria-sort": active ? (sort.desc ? "descending" : "ascending") : "none" },
        h(
          "button",
          {
            type: "button",
            class: "th-button",
            on: {
              click: () => {
                sort = { col, desc: active ? !sort.desc : col !== "name" };
                renderTable();
              },
            },
          },
          label,
          active ? h("span", { class: "sort-arrow", text: sort.desc ? "↓" : "↑" }) : null,
        ),
      );
    };
    const isGrad = current === "gradients";
    const body = sorted().map((r) =>
      h(
        "tr",
        { class: ["param-row", r.severity ? "has-flag" : null], dataset: { key: r.key }, on: { click: () => focusCard(r.key) } },
        h("td", { class: "name-col" }, h("a", { href: "#" + encodeURIComponent(r.key), class: "strong mono", text: r.name, on: { click: (e) => e.preventDefault() } })),
        numCell(r.norm, "This histogram carries no norm statistic"),
        h("td", { class: "spark-col" }, sparkline(rows.spark[`${r.key}${STAT_SEP}norm`])),
        isGrad ? numCell(r.wnorm, WEIGHTS_HELP) : null,
        isGrad ? numCell(r.ratio, WEIGHTS_HELP, ratioHelp) : null,
        h("td", { class: ["num", r.nonfinite ? "bad" : null], text: r.nonfinite ? fmtNum(r.nonfinite) : r.everNonfinite ? `0 (max ${fmtNum(r.everNonfinite)})` : "0" }),
        h("td", { class: "flags-col" }, r.flags.map((f) => h("span", { class: ["flag", "flag-" + f], title: FLAG_HELP[f], text: FLAG_TEXT[f] }))),
      ),
    );
    replace(
      tableSlot,
      h(
        "table",
        { class: "table params" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            th("name", "Parameter"),
            th("norm", "Norm", "num"),
            h("th", { text: "Norm over time" }),
            isGrad ? th("wnorm", "Weight norm", "num") : null,
            isGrad ? th("ratio", lr ? "Update / weight" : "Grad / weight", "num") : null,
            th("nonfinite", "NaN / inf", "num"),
            th("severity", "Flags"),
          ),
        ),
        h("tbody", {}, body),
      ),
    );
  }

  function focusCard(key) {
    const card = cards.get(key);
    if (!card) return;
    card.el.scrollIntoView({ behavior: "smooth", block: "start" });
    card.el.classList.add("flash");
    setTimeout(() => card.el.classList.remove("flash"), 1200);
  }

  function renderCards(params) {
    if (observer) observer.disconnect();
    cards.clear();
    const order = sorted().map((r) => r.key);
    const byKey = new Map(params.map((p) => [p.key, p]));
    observer = new IntersectionObserver(
      (entries) => {
        for (const e of entries) {
          const card = cards.get(e.target.dataset.key);
          if (card && e.isIntersecting) card.load();
        }
      },
      { rootMargin: "400px 0px" },
    );
    replace(
      cardsEl,
      order.map((key) => {
        const row = rows.find((r) => r.key === key);
        const card = new HistogramCard(run, byKey.get(key), row);
        cards.set(key, card);
        observer.observe(card.el);
        return card.el;
      }),
    );
  }

  await showSection(current);

  if (run.state === "running" || run.state === "crashed") {
    // Refresh the latest statistics as new histograms arrive (cheap: summary only).
    let timer = 0;
    const stream = follow(`/runs/${seg(run.id)}/events${qs({ after_seq: run.acked_seq })}`, {
      rows: (data) => {
        if (!data.rows.some((r) => Object.keys(r).some((k) => histKeys.includes(k)))) return;
        clearTimeout(timer);
        timer = setTimeout(async () => {
          const fresh = await api(`/runs/${seg(run.id)}`).catch(() => null);
          if (fresh) {
            Object.assign(run, fresh);
            head.update(fresh);
            showSection(current, { live: true });
          }
        }, 1500);
      },
      run: (r) => {
        head.update(r);
        if (r.state !== "running" && r.state !== "crashed") stream.close();
      },
    });
  }
}

function sparkline(series) {
  const canvas = h("canvas", { class: "spark" });
  if (!series || !series.value.length) return canvas;
  const values = series.value.map((x) => numeric(x));
  requestAnimationFrame(() => {
    const { ctx, w, h: hgt } = fitCanvas(canvas, 96, 22);
    const finite = values.filter((v) => Number.isFinite(v) && v > 0);
    if (!finite.length) return;
    const lo = Math.log10(Math.min(...finite));
    const hi = Math.log10(Math.max(...finite));
    const span = hi - lo || 1;
    ctx.strokeStyle = "#2563eb";
    ctx.lineWidth = 1.2;
    ctx.beginPath();
    let pen = false;
    values.forEach((v, i) => {
      const x = (i / Math.max(1, values.length - 1)) * (w - 2) + 1;
      if (!(Number.isFinite(v) && v > 0)) {
        pen = false;
        ctx.fillStyle = "#db2777";
        ctx.fillRect(x - 1, 0, 2, hgt);
        return;
      }
      const y = hgt - 2 - ((Math.log10(v) - lo) / span) * (hgt - 4);
      if (pen) ctx.lineTo(x, y);
      else ctx.moveTo(x, y);
      pen = true;
    });
    ctx.stroke();
  });
  return canvas;
}

/** One parameter: heatmap, percentile lines, step slider, histogram at step, bands chart.
 *
 * The heatmap and the percentile chart under it share one x axis (steps, same plot
 * margins), so a column of the heatmap sits exactly over the same step of the chart. */
class HistogramCard {
  constructor(run, param, row) {
    this.run = run;
    this.param = param;
    this.loaded = false;
    this.flagsEl = h("span", { class: "card-flags" });
    this.setFlags(row);
    this.body = h("div", { class: "hist-body" }, h("p", { class: "muted loading", text: "Loading histograms…" }));
    this.updateBtn = h("button", { type: "button", class: "button small", hidden: true, text: "New steps: update", title: "Redraw with the histograms logged since", on: { click: () => this.reload() } });
    this.el = h("section", { class: "card hist-card", id: param.key, dataset: { key: param.key } }, h("div", { class: "media-head" }, h("h3", { class: "mono", text: param.name }), this.flagsEl, this.updateBtn, h("span", { class: "kind", text: param.key })), this.body);
  }

  /** The parameter's flags, as the table has them now (they follow live data at once: a
   * flag is news, not a redraw). */
  setFlags(row) {
    replace(this.flagsEl, row ? row.flags.map((f) => h("span", { class: ["flag", "flag-" + f], title: FLAG_HELP[f], text: FLAG_TEXT[f] })) : []);
  }

  /** New histograms arrived (live run): offer to redraw without pulling the rug. */
  markStale(row) {
    this.setFlags(row);
    if (this.loaded) this.updateBtn.hidden = false;
  }

  reload() {
    this.updateBtn.hidden = true;
    this.loaded = false;
    this.load();
  }

  async load() {
    if (this.loaded) return;
    this.loaded = true;
    let res;
    try {
      res = await api(`/runs/${seg(this.run.id)}/histograms${qs({ key: this.param.key, samples: HEATMAP_STEPS })}`);
    } catch (err) {
      replace(this.body, h("p", { class: "error", text: err.message }));
      return;
    }
    if (!res.step.length) {
      replace(this.body, h("p", { class: "muted", text: "No histograms yet." }));
      return;
    }
    this.data = res;
    this.prepare();
    this.build();
    this.el.dataset.steps = String(res.step.length);
    this.el.dataset.lastStep = String(res.step[res.step.length - 1]);
  }

  prepare() {
    const { bins, counts, step } = this.data;
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < step.length; i++) {
      const e = bins[i];
      if (!e || !e.length) continue;
      const a = numeric(e[0]);
      const b = numeric(e[e.length - 1]);
      if (Number.isFinite(a) && a < lo) lo = a;
      if (Number.isFinite(b) && b > hi) hi = b;
    }
    if (!(hi >= lo)) {
      lo = -1;
      hi = 1;
    }
    if (hi === lo) {
      lo -= 0.5;
      hi += 0.5;
    }
    this.lo = lo;
    this.hi = hi;
    const n = step.length;
    this.columns = []; // per histogram: CELLS densities, top = highest value, -1 = empty
    const col = new Float64Array(CELLS);
    this.pcts = [];
    for (let i = 0; i < n; i++) {
      const edges = (bins[i] || []).map(numeric);
      const cnt = counts[i] || [];
      resample(edges, cnt, lo, hi, CELLS, col);
      let max = 0;
      for (let k = 0; k < CELLS; k++) if (col[k] > max) max = col[k];
      const out = new Float64Array(CELLS);
      for (let k = 0; k < CELLS; k++) out[CELLS - 1 - k] = max > 0 ? Math.sqrt(col[k] / max) : -1;
      this.columns.push(out);
      this.pcts.push(edges.length ? percentiles(edges, cnt, QS) : QS.map(() => NaN));
    }
  }

  build() {
    const { step } = this.data;
    this.heat = h("canvas", { class: "heat", "aria-label": `Distribution of ${this.param.name} over steps` });
    this.heatTip = h("div", { class: "muted heat-tip", text: "Click the heatmap to pick a step." });
    this.histCanvas = h("canvas", { class: "hist" });
    this.statsEl = h("div", { class: "stats compact" });
    this.index = step.length - 1;
    this.slider = h("input", { type: "range", min: "0", max: String(step.length - 1), value: String(this.index), "aria-label": `Step for ${this.param.name}` });
    this.stepOut = h("output", { class: "step-label" });
    this.slider.addEventListener("input", () => this.select(Number(this.slider.value)));
    const bandsHost = h("div", { class: "bands-plot" });
    replace(
      this.body,
      h(
        "div",
        { class: "hist-layout" },
        h(
          "div",
          { class: "hist-left" },
          h("div", { class: "heat-wrap" }, this.heat),
          h("div", { class: "slider" }, this.slider, this.stepOut),
          this.heatTip,
          h("div", { class: "sub", text: "Percentiles: median, 25–75 % and 5–95 % bands" }),
          bandsHost,
        ),
        h("div", { class: "hist-right" }, h("div", { class: "sub", text: "Histogram at step" }), this.histCanvas, this.statsEl),
      ),
    );
    const indexAt = (e) => {
      const r = this.heat.getBoundingClientRect();
      const plot = this.plotRect;
      const x = e.clientX - r.left;
      if (x < plot.x - 4 || x > plot.x + plot.w + 4) return -1;
      return this.nearestIndex(this.stepAt(x));
    };
    this.heat.addEventListener("click", (e) => {
      const i = indexAt(e);
      if (i >= 0) this.select(i);
    });
    this.heat.addEventListener("pointermove", (e) => {
      const r = this.heat.getBoundingClientRect();
      const plot = this.plotRect;
      const i = indexAt(e);
      const v = this.hi - ((e.clientY - r.top - plot.y) / plot.h) * (this.hi - this.lo);
      if (i >= 0 && v >= this.lo && v <= this.hi) this.heatTip.textContent = `step ${fmtNum(step[i])} · value ${fmtNum(v)} · median ${fmtNum(this.pcts[i][2])}`;
    });
    this.drawHeat();
    this.select(this.index);
    this.drawBands(bandsHost);
    if (this.resizer) this.resizer.disconnect();
    this.resizer = new ResizeObserver(() => this.drawHeat());
    this.resizer.observe(this.heat.parentElement);
  }

  /** The step under a heatmap pixel column, and the histogram nearest a step. */
  stepAt(x) {
    const { step } = this.data;
    const s0 = step[0];
    const s1 = step[step.length - 1];
    return s0 + ((x - this.plotRect.x) / this.plotRect.w) * (s1 - s0 || 1);
  }

  nearestIndex(s) {
    const { step } = this.data;
    let best = 0;
    for (let i = 1; i < step.length; i++) if (Math.abs(step[i] - s) < Math.abs(step[best] - s)) best = i;
    return best;
  }

  drawHeat() {
    const wrap = this.heat.parentElement;
    const width = Math.max(200, wrap.clientWidth || 500);
    const height = 200;
    const { ctx } = fitCanvas(this.heat, width, height);
    const plot = { x: HEAT_LEFT, y: 4, w: width - HEAT_LEFT - HEAT_RIGHT, h: height - 26 };
    this.plotRect = plot;
    ctx.clearRect(0, 0, width, height);
    const { step } = this.data;
    const n = step.length;
    const s0 = step[0];
    const s1 = step[step.length - 1];
    const span = s1 - s0 || 1;
    const px = n > 1 ? (s) => plot.x + ((s - s0) / span) * plot.w : () => plot.x + plot.w / 2;
    // One pixel column per screen column, each showing the histogram whose step is nearest
    // (so columns are as wide as the gaps between logged steps, aligned with the chart below).
    const cols = Math.max(1, Math.round(plot.w));
    const grid = new Float64Array(CELLS * cols);
    let i = 0;
    for (let c = 0; c < cols; c++) {
      const s = n > 1 ? s0 + ((c + 0.5) / cols) * span : s0;
      while (i + 1 < n && Math.abs(step[i + 1] - s) <= Math.abs(step[i] - s)) i++;
      const column = this.columns[i];
      for (let k = 0; k < CELLS; k++) grid[k * cols + c] = column[k];
    }
    paintGrid(ctx, CELLS, cols, grid, (v) => (v < 0 ? 0 : Math.round(v * 255)), lut("density"), plot);
    // percentile lines
    const py = (v) => plot.y + ((this.hi - v) / (this.hi - this.lo)) * plot.h;
    const line = (q, dash, width2) => {
      ctx.beginPath();
      ctx.setLineDash(dash);
      ctx.lineWidth = width2;
      let pen = false;
      for (let k = 0; k < n; k++) {
        const v = this.pcts[k][q];
        if (!Number.isFinite(v)) {
          pen = false;
          continue;
        }
        if (pen) ctx.lineTo(px(step[k]), py(v));
        else ctx.moveTo(px(step[k]), py(v));
        pen = true;
      }
      ctx.stroke();
    };
    ctx.save();
    ctx.beginPath();
    ctx.rect(plot.x, plot.y, plot.w, plot.h);
    ctx.clip();
    ctx.strokeStyle = "rgba(232, 89, 12, 0.9)";
    line(2, [], 1.6);
    ctx.strokeStyle = "rgba(232, 89, 12, 0.7)";
    line(0, [3, 3], 1);
    line(4, [3, 3], 1);
    ctx.setLineDash([]);
    ctx.restore();
    // axes: value labels at the top, middle and bottom; nice step ticks like the charts'
    ctx.fillStyle = "#6b7280";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const [v, y] of [
      [this.hi, plot.y + 5],
      [(this.hi + this.lo) / 2, plot.y + plot.h / 2],
      [this.lo, plot.y + plot.h - 5],
    ])
      ctx.fillText(fmtCompact(v), plot.x - 6, y);
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const ticks = niceTicks(s0, s1, Math.max(2, Math.floor(plot.w / 70)), true);
    let lastRight = -Infinity;
    for (const t of ticks.ticks) {
      const x = px(t);
      const label = fmtTick(t, ticks.step);
      const w = ctx.measureText(label).width;
      if (x - w / 2 <= lastRight + 6 || x + w / 2 > width) continue;
      ctx.fillText(label, x, plot.y + plot.h + 5);
      lastRight = x + w / 2;
    }
    // selected step
    if (this.index !== undefined) {
      ctx.strokeStyle = "rgba(17, 24, 39, 0.75)";
      ctx.lineWidth = 1;
      const x = Math.round(px(step[this.index])) + 0.5;
      ctx.beginPath();
      ctx.moveTo(x, plot.y);
      ctx.lineTo(x, plot.y + plot.h);
      ctx.stroke();
    }
  }

  async select(i) {
    this.index = i;
    this.slider.value = String(i);
    const step = this.data.step[i];
    this.stepOut.textContent = `step ${fmtNum(step)}`;
    this.drawHeat();
    this.drawHist(i);
    // the statistics of that step's histogram (count, NaN, inf...) live in its row
    const id = (this.statsReq = (this.statsReq || 0) + 1);
    const res = await api(`/runs/${seg(this.run.id)}/history/rows${qs({ keys: this.param.key, min_step: step, max_step: step, limit: 10 })}`).catch(() => null);
    if (id !== this.statsReq || !res) return;
    const row = res.rows.reverse().find((r) => r[this.param.key]);
    const v = row ? row[this.param.key] : null;
    if (!v) return;
    const stats = ["min", "max", "mean", "std", "norm", "count", "zeros", "nan", "inf", "ninf"];
    replace(
      this.statsEl,
      stats.map((s) => {
        const x = numeric(v[s]);
        const bad = ((s === "nan" || s === "inf" || s === "ninf") && x > 0) || (x !== null && !Number.isFinite(x));
        return h("div", { class: ["stat", bad ? "bad" : null], title: `${STAT_NAMES[s]}: ${fmtNum(x, 10)}` }, h("span", { class: "stat-name", text: s }), h("span", { class: "stat-value", text: fmtCompact(x) }));
      }),
    );
  }

  drawHist(i) {
    const edges = (this.data.bins[i] || []).map(numeric);
    const counts = this.data.counts[i] || [];
    const width = Math.max(200, this.histCanvas.parentElement.clientWidth || 260);
    const height = 120;
    const { ctx } = fitCanvas(this.histCanvas, width, height);
    ctx.clearRect(0, 0, width, height);
    if (!counts.length) return;
    if (!counts.some((c) => c > 0)) {
      ctx.fillStyle = "#8a93a2";
      ctx.font = "12px system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.fillText("No finite values at this step", width / 2, height / 2);
      return;
    }
    const max = Math.max(...counts) || 1;
    const lo = edges[0];
    const hi = edges[edges.length - 1];
    const span = hi - lo || 1;
    const plot = { x: 4, y: 4, w: width - 8, h: height - 20 };
    ctx.fillStyle = "#3b82f6";
    for (let b = 0; b < counts.length; b++) {
      const x0 = plot.x + ((edges[b] - lo) / span) * plot.w;
      const x1 = plot.x + ((edges[b + 1] - lo) / span) * plot.w;
      const hh = (counts[b] / max) * plot.h;
      ctx.fillRect(x0, plot.y + plot.h - hh, Math.max(1, x1 - x0 - 0.5), hh);
    }
    // the zero line, when zero is inside the range: where a distribution sits matters
    if (lo < 0 && hi > 0) {
      const z = Math.round(plot.x + ((0 - lo) / span) * plot.w) + 0.5;
      ctx.strokeStyle = "rgba(17, 24, 39, 0.35)";
      ctx.setLineDash([2, 2]);
      ctx.beginPath();
      ctx.moveTo(z, plot.y);
      ctx.lineTo(z, plot.y + plot.h);
      ctx.stroke();
      ctx.setLineDash([]);
    }
    ctx.fillStyle = "#6b7280";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "top";
    ctx.textAlign = "left";
    ctx.fillText(fmtCompact(lo), plot.x, plot.y + plot.h + 4);
    ctx.textAlign = "right";
    ctx.fillText(fmtCompact(hi), plot.x + plot.w, plot.y + plot.h + 4);
  }

  drawBands(host) {
    const { step, time } = this.data;
    const mk = (id, label, qLo, qHi, color) =>
      new Series(id, label, color).setFromApi({
        step,
        time,
        value: this.pcts.map((p) => p[2]),
        min: this.pcts.map((p) => p[qLo]),
        max: this.pcts.map((p) => p[qHi]),
      });
    // The heatmap's margins, so the two share their x axis pixel for pixel.
    const chart = new Chart(host, { xMode: "step", plotLeft: HEAT_LEFT, padRight: HEAT_RIGHT });
    chart.setSeries([mk("p5", "median (5–95 %)", 0, 4, "#e8590c"), mk("p25", "median (25–75 %)", 1, 3, "#e8590c")]);
    chart.setVisible(true);
  }
}

const HEAT_LEFT = 56; // the heatmap's (and the percentile chart's) left plot margin
const HEAT_RIGHT = 8;
const STAT_NAMES = { min: "Minimum", max: "Maximum", mean: "Mean", std: "Standard deviation", norm: "L2 norm", count: "Values", zeros: "Zeros", nan: "NaN values", inf: "+inf values", ninf: "−inf values" };
