// @ts-check
// `/r/{id}/gradients`: the gradient explorer, for runs with histograms (gradexp.watch).
//
// - A table of parameters with the latest gradient norm, the weight norm, their ratio,
//   non-finite counts and flags (non-finite, exploding, vanishing), sorted so that the
//   problem layers come first. Latest values come from the run's summary (the last
//   histogram of each key, statistics included); "ever non-finite" from the max of the
//   K#nan / K#inf / K#ninf series over the whole run (one bucket: samples=1).
// - Per parameter, lazily when scrolled into view, a card (`histogram-card.js`): a step x
//   value heatmap of the distribution over time (every histogram resampled onto one value
//   grid), percentile lines, a step slider with the histogram at that step and its
//   statistics, and a chart of percentile bands.
// The analysis (norms, ratios, flags, sorting) is in `lib/gradients.js`.

import { api, follow, qs, seg } from "../api.js";
import { emptyState, h, replace } from "../dom.js";
import { fitCanvas } from "../heatmap.js";
import { HistogramCard } from "../histogram-card.js";
import { setCrumbs } from "../layout.js";
import { fmtNum } from "../lib/format.js";
import { FLAG_HELP, FLAG_TEXT, analyse, everNonfinite, learningRate, median, sections, sortRows } from "../lib/gradients.js";
import { STAT_SEP } from "../lib/keys.js";
import { numeric } from "../lib/values.js";
import { runHeader } from "../run-header.js";

/** @typedef {import("../lib/gradients.js").Param} Param */
/** @typedef {import("../lib/gradients.js").ParamRow} ParamRow */
/** @typedef {import("../lib/gradients.js").SortColumn} SortColumn */
/** @typedef {import("../lib/gradients.js").Flag} Flag */
/** @typedef {{value: unknown[], max: unknown[]}} HistorySeries */

const KEYS_PER_REQUEST = 40;
const WATCH_ALL = 'gradexp.watch(model, log="all")';
const WEIGHTS_HELP = `Not logged: this parameter has no weight histogram (parameters/<name>). Log weights too with ${WATCH_ALL}.`;

/**
 * The history of many keys, in requests of at most KEYS_PER_REQUEST keys.
 * @param {string} runId
 * @param {string[]} keys
 * @param {number} samples
 * @returns {Promise<Record<string, HistorySeries>>}
 */
async function historyMany(runId, keys, samples) {
  /** @type {Record<string, HistorySeries>} */
  const series = {};
  for (let i = 0; i < keys.length; i += KEYS_PER_REQUEST) {
    const res = await api(`/runs/${seg(runId)}/history${qs({ keys: keys.slice(i, i + KEYS_PER_REQUEST), samples })}`);
    Object.assign(series, res.series);
  }
  return series;
}

/**
 * The gradient explorer of a run.
 * @param {HTMLElement} el
 * @param {string} runId
 * @returns {Promise<void>}
 */
export async function mountGradients(el, runId) {
  const [run, keyList] = await Promise.all([api(`/runs/${seg(runId)}`), api(`/runs/${seg(runId)}/keys`)]);
  setCrumbs([{ text: "Projects", href: "/" }, { text: run.project, href: `/p/${seg(run.owner)}/${seg(run.project)}` }, { text: run.name, href: `/r/${seg(run.id)}` }, { text: "Gradients" }]);
  /** @type {{key: string, kind: string}[]} */
  const keyInfo = keyList.keys;
  const kinds = keyInfo.map((k) => k.kind);
  const head = runHeader(run, "gradients", { hasMedia: kinds.includes("tensor") || kinds.includes("image") || kinds.includes("gallery"), hasGradients: true });
  const histKeys = keyInfo.filter((k) => k.kind === "histogram").map((k) => k.key);
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
          const any = data.rows.some((/** @type {Record<string, any>} */ r) => Object.values(r).some((v) => v && typeof v === "object" && v._type === "histogram"));
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
    /** @type {Flag[]} */ (Object.keys(FLAG_TEXT)).map((f) => h("span", { title: FLAG_HELP[f] }, h("span", { class: ["flag", "flag-" + f], text: FLAG_TEXT[f] }), " ", FLAG_HELP[f])),
  );
  // Without weight histograms there is no weight norm nor update / weight: say how to get them.
  const weightsHint = !secs.has("parameters") ? h("p", { class: "hint" }, "Weight norm and update / weight need the weights' histograms too: ", h("code", { text: WATCH_ALL }), ".") : null;
  replace(content, h("div", { class: "toolbar" }, tabBar, h("div", { class: "spacer" }), h("span", { class: "muted", text: `${histKeys.length} histogram keys` })), tableSlot, weightsHint, legend, cardsEl);

  // With a learning rate in the config, the ratio column is SGD's update-to-weight ratio.
  const lr = learningRate(run.config);
  const ratioHelp = lr
    ? `lr · ‖gradient‖ / ‖weight‖ with lr = ${lr} from the config: the size of an SGD step relative to the weights (around 1e-3 is typical; momentum and Adam change it)`
    : "‖gradient‖ / ‖weight‖ (no learning rate in the config: multiply by it for SGD's update-to-weight ratio)";
  /** @type {{col: SortColumn, desc: boolean}} */
  let sort = { col: "severity", desc: true };
  /** @type {ParamRow[]} */
  let rows = [];
  /** @type {Record<string, HistorySeries>} each parameter's norm over time (the sparklines) */
  let spark = {};
  /** @type {IntersectionObserver | null} */
  let observer = null;
  /** @type {Map<string, HistogramCard>} */
  const cards = new Map();

  /**
   * Show a section's table (and, unless live, its cards).
   * @param {string} name
   * @param {{live?: boolean}} [options] live: new data of the section on screen
   */
  async function showSection(name, { live = false } = {}) {
    current = name;
    replace(
      tabBar,
      [...secs.keys()].map((s) =>
        h("button", { type: "button", role: "tab", class: ["seg", s === current ? "active" : null], "aria-selected": String(s === current), text: `${s} (${/** @type {Param[]} */ (secs.get(s)).length})`, on: { click: () => showSection(s) } }),
      ),
    );
    const params = /** @type {Param[]} */ (secs.get(name));
    if (!live) replace(tableSlot, h("p", { class: "muted pad", text: "Reading statistics…" }));
    const statKeys = params.flatMap((p) => [`${p.key}${STAT_SEP}nan`, `${p.key}${STAT_SEP}inf`, `${p.key}${STAT_SEP}ninf`]);
    const normKeys = params.map((p) => `${p.key}${STAT_SEP}norm`);
    /** @type {Record<string, HistorySeries>} */
    let everSeries = {};
    /** @type {Record<string, HistorySeries>} */
    let normSeries = {};
    try {
      [everSeries, normSeries] = await Promise.all([historyMany(run.id, statKeys, 1), historyMany(run.id, normKeys, 64)]);
    } catch {
      /* the table still shows the latest values */
    }
    /** @type {Record<string, number>} */
    const ever = {};
    for (const p of params) ever[p.key] = everNonfinite(p.key, everSeries);
    /** @type {Record<string, number>} */
    const ownMedians = {};
    for (const p of params) {
      const s = normSeries[`${p.key}${STAT_SEP}norm`];
      ownMedians[p.key] = s ? median(s.value.map((x) => numeric(x))) : NaN;
    }
    rows = analyse(params, run.summary || {}, ever, ownMedians, lr);
    spark = normSeries;
    renderTable();
    if (!live) {
      renderCards(params);
      return;
    }
    // Live: the table is redrawn, but a card someone may be reading only offers an update.
    for (const [key, card] of cards) card.markStale(rows.find((r) => r.key === key));
  }

  const sorted = () => sortRows(rows, sort.col, sort.desc);

  /**
   * A number cell: "—" (with what to log) when the value was never logged, a flagged
   * NaN/inf when it was logged broken, else the number (full precision on hover).
   * @param {number | null} v
   * @param {string} missingHelp
   * @param {string} [title]
   */
  function numCell(v, missingHelp, title) {
    if (v === null || v === undefined) return h("td", { class: ["num", "missing"], title: missingHelp, text: "—" });
    if (!Number.isFinite(v)) return h("td", { class: ["num", "bad"], title: "The logged value is not finite", text: fmtNum(v) });
    return h("td", { class: "num", title: title ? `${title}\n${fmtNum(v, 10)}` : fmtNum(v, 10), text: fmtNum(v) });
  }

  function renderTable() {
    /**
     * @param {SortColumn} col
     * @param {string} label
     * @param {string} [cls]
     */
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
        h("td", { class: "spark-col" }, sparkline(spark[`${r.key}${STAT_SEP}norm`])),
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

  /** @param {string} key */
  function focusCard(key) {
    const card = cards.get(key);
    if (!card) return;
    card.el.scrollIntoView({ behavior: "smooth", block: "start" });
    card.el.classList.add("flash");
    setTimeout(() => card.el.classList.remove("flash"), 1200);
  }

  /** @param {Param[]} params */
  function renderCards(params) {
    if (observer) observer.disconnect();
    cards.clear();
    const order = sorted().map((r) => r.key);
    const byKey = new Map(params.map((p) => [p.key, p]));
    const io = new IntersectionObserver(
      (entries) => {
        for (const e of entries) {
          const card = cards.get(/** @type {string} */ (/** @type {HTMLElement} */ (e.target).dataset.key));
          if (card && e.isIntersecting) card.load();
        }
      },
      { rootMargin: "400px 0px" },
    );
    observer = io;
    replace(
      cardsEl,
      order.map((key) => {
        const row = rows.find((r) => r.key === key);
        const card = new HistogramCard(run, /** @type {Param} */ (byKey.get(key)), row);
        cards.set(key, card);
        io.observe(card.el);
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
        if (!data.rows.some((/** @type {Record<string, unknown>} */ r) => Object.keys(r).some((k) => histKeys.includes(k)))) return;
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

/**
 * A parameter's norm over time, on a log scale, 96 x 22 pixels; non-finite or zero norms
 * are pink ticks.
 * @param {HistorySeries | undefined} series
 */
function sparkline(series) {
  const canvas = h("canvas", { class: "spark" });
  if (!series || !series.value.length) return canvas;
  const values = series.value.map((x) => numeric(x) ?? NaN); // NaN, like null, is drawn as a gap
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
