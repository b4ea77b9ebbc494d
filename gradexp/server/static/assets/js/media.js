// @ts-check
// The Media tab: logged Tensors (facts, statistics, a 2-D slice as a heatmap, download),
// Images (the image at a chosen step), galleries (a list of images logged under one
// key: all of them at a chosen step) and tables (gradexp.Table: sortable, filterable rows
// with image cells), each with a step slider.
//
// A tensor's slice comes from the server (`/runs/{id}/tensor?path=&index=`), strided down
// to at most 256 x 256 cells, so a large tensor never travels to the browser whole.

import { api, apiUrl, qs, seg } from "./api.js";
import { h, icon, replace, emptyState } from "./dom.js";
import { colorBar, fitCanvas, paintGrid } from "./heatmap.js";
import { lut, valueScale } from "./lib/colormaps.js";
import { fmtBytes, fmtCompact, fmtNum, fmtShape } from "./lib/format.js";
import { cellText, isImageCell, pageOf, tableRows, visibleRows } from "./lib/table.js";
import { numeric } from "./lib/values.js";

/** @typedef {import("./lib/values.js").TypedValue} TypedValue */

/**
 * What a tensor card draws into (made anew by each render).
 * @typedef {{canvas: HTMLCanvasElement, hoverEl: HTMLElement, scaleEl: HTMLElement, statusEl: HTMLElement}} TensorView
 */

const MAX_STEPS = 1000;

/**
 * A step slider over a list of steps; calls onChange(index).
 * @param {number[]} steps
 * @param {number} index
 * @param {(index: number) => void} onChange
 */
function stepSlider(steps, index, onChange) {
  const input = h("input", { type: "range", min: "0", max: String(Math.max(0, steps.length - 1)), step: "1", value: String(index), "aria-label": "Step" });
  const label = h("output", { class: "step-label" });
  const setLabel = () => (label.textContent = `step ${fmtNum(steps[Number(input.value)] ?? 0)}  ·  ${Number(input.value) + 1} of ${steps.length}`);
  input.addEventListener("input", () => {
    setLabel();
    onChange(Number(input.value));
  });
  setLabel();
  const el = h("div", { class: "slider" }, input, label);
  return {
    el,
    input,
    /**
     * @param {number[]} next
     * @param {number} i
     */
    setSteps(next, i) {
      steps = next;
      input.max = String(Math.max(0, steps.length - 1));
      input.value = String(i);
      setLabel();
    },
  };
}

/** The Media tab of a run: a card per tensor or image key. */
export class MediaView {
  /**
   * @param {HTMLElement} container
   * @param {any} run the run, as the API sends it
   * @param {{key: string, kind: string}[]} keys its tensor and image keys
   */
  constructor(container, run, keys) {
    this.run = run;
    /** @type {Map<string, MediaCard>} */
    this.cards = new Map();
    if (!keys.length) {
      replace(container, emptyState("No media", "Log gradexp.Tensor(...), gradexp.Image(...) or gradexp.Table(...) values (or a list of images) to see them here."));
      return;
    }
    const grid = h("div", { class: "media-grid" });
    replace(container, grid);
    for (const k of keys) {
      const card = k.kind === "image" ? new ImageCard(run, k.key) : k.kind === "gallery" ? new GalleryCard(run, k.key) : k.kind === "table" ? new TableCard(run, k.key) : new TensorCard(run, k.key);
      this.cards.set(k.key, card);
      grid.append(card.el);
      card.load();
    }
  }

  /**
   * Live rows: new tensor/image values extend their card's steps.
   * @param {Record<string, any>[]} rows
   */
  onRows(rows) {
    for (const row of rows) {
      for (const [k, v] of Object.entries(row)) {
        const card = this.cards.get(k);
        if (card && v && typeof v === "object" && (v._type === "tensor" || v._type === "image" || v._type === "gallery" || v._type === "table")) card.add(row._step, v);
      }
    }
  }
}

/** A key's values over steps, with a slider; each kind of card draws its own value. */
class MediaCard {
  /**
   * @param {any} run
   * @param {string} key
   * @param {string} kindLabel
   */
  constructor(run, key, kindLabel) {
    this.run = run;
    this.key = key;
    /** @type {number[]} */
    this.steps = [];
    /** @type {TypedValue[]} */
    this.values = [];
    this.index = 0;
    /** @type {ReturnType<typeof stepSlider> | null} */
    this.slider = null;
    this.body = h("div", { class: "media-body" }, h("p", { class: "muted", text: "Loading…" }));
    this.sliderSlot = h("div");
    this.el = h("section", { class: "card media-card", dataset: { key } }, h("div", { class: "media-head" }, h("h3", { text: key }), h("span", { class: "kind", text: kindLabel })), this.sliderSlot, this.body);
  }

  async load() {
    try {
      const res = await api(`/runs/${seg(this.run.id)}/histograms${qs({ key: this.key, samples: MAX_STEPS })}`);
      this.steps = res.step;
      this.values = res.values || [];
    } catch (err) {
      replace(this.body, h("p", { class: "error", text: /** @type {Error} */ (err).message }));
      return;
    }
    if (!this.steps.length) {
      replace(this.body, h("p", { class: "muted", text: "No values yet." }));
      return;
    }
    this.index = this.steps.length - 1;
    this.slider = stepSlider(this.steps, this.index, (i) => {
      this.index = i;
      this.render();
    });
    replace(this.sliderSlot, this.slider.el);
    this.render();
  }

  /** Draw the value at the current step. */
  render() {}

  /**
   * A live value: a new last step (shown at once when the slider was at the end).
   * @param {number} step
   * @param {TypedValue} value
   */
  add(step, value) {
    if (!this.slider) return;
    const atEnd = this.index === this.steps.length - 1;
    this.steps.push(step);
    this.values.push(value);
    if (atEnd) this.index = this.steps.length - 1;
    this.slider.setSteps(this.steps, this.index);
    if (atEnd) this.render();
  }
}

class ImageCard extends MediaCard {
  /**
   * @param {any} run
   * @param {string} key
   */
  constructor(run, key) {
    super(run, key, "image");
  }

  render() {
    const v = this.values[this.index];
    if (!v) return;
    const src = fileUrl(this.run, v.path);
    const img = h("img", { class: "media-image", src, alt: v.caption || `${this.key} at step ${this.steps[this.index]}`, width: v.width, height: v.height, loading: "lazy" });
    if (v.width < 160 && v.height < 160) img.classList.add("pixelated");
    replace(
      this.body,
      h("figure", { class: "media-figure" }, img, h("figcaption", {}, v.caption ? h("span", { text: v.caption }) : null, h("span", { class: "muted", text: `${v.width}×${v.height} · ${v.channels} ch · ${fmtBytes(v.size)}` }))),
    );
  }
}

/**
 * The URL of a run file (an image's `path`).
 * @param {any} run
 * @param {string} path
 */
function fileUrl(run, path) {
  return apiUrl(`/runs/${seg(run.id)}/files/${path.split("/").map(encodeURIComponent).join("/")}`);
}

/** A gallery: every image of one step side by side, each with its caption; a click
 * opens an image at full size. */
class GalleryCard extends MediaCard {
  /**
   * @param {any} run
   * @param {string} key
   */
  constructor(run, key) {
    super(run, key, "gallery");
  }

  render() {
    const v = this.values[this.index];
    if (!v) return;
    /** @type {any[]} */
    const images = v.images || [];
    const step = this.steps[this.index];
    const figures = images.map((im, i) => {
      const img = h("img", { class: "gallery-image", src: fileUrl(this.run, im.path), alt: im.caption || `${this.key} ${i + 1} at step ${step}`, width: im.width, height: im.height, loading: "lazy" });
      if (im.width < 160 && im.height < 160) img.classList.add("pixelated");
      return h(
        "figure",
        { class: "gallery-item", title: `${im.width}×${im.height} · ${im.channels} ch · ${fmtBytes(im.size)}` },
        h("a", { href: fileUrl(this.run, im.path), target: "_blank", rel: "noopener" }, img),
        h("figcaption", { text: im.caption || `#${i + 1}` }),
      );
    });
    replace(this.body, h("div", { class: "gallery", dataset: { count: String(images.length) } }, figures), h("p", { class: "muted gallery-count", text: `${images.length} image${images.length === 1 ? "" : "s"} at step ${fmtNum(step)}` }));
  }
}

const TABLE_PAGE = 100;

/** A table at a step: rows sorted by a clicked column, filtered by text, paged; image
 * cells drawn as thumbnails. Sort and filter stay as they are when the step changes. */
class TableCard extends MediaCard {
  /**
   * @param {any} run
   * @param {string} key
   */
  constructor(run, key) {
    super(run, key, "table");
    /** @type {Map<string, Promise<import("./lib/table.js").TableDoc>>} the files fetched, by path */
    this.docs = new Map();
    this.filter = "";
    /** @type {string | null} the column sorted by */
    this.sortName = null;
    /** @type {1 | -1} */
    this.dir = 1;
    this.page = 0;
    this.renderId = 0;
  }

  /** @param {string} path */
  fetchDoc(path) {
    let doc = this.docs.get(path);
    if (!doc) {
      doc = fetch(fileUrl(this.run, path), { credentials: "same-origin" }).then((res) => {
        if (!res.ok) throw new Error(`could not load the table (HTTP ${res.status})`);
        return res.json();
      });
      doc.catch(() => this.docs.delete(path)); // a failed fetch is tried again next time
      this.docs.set(path, doc);
    }
    return doc;
  }

  async render() {
    const v = this.values[this.index];
    if (!v) return;
    const id = ++this.renderId;
    let doc;
    try {
      doc = await this.fetchDoc(v.path);
    } catch (err) {
      if (id === this.renderId) replace(this.body, h("p", { class: "error", text: /** @type {Error} */ (err).message }));
      return;
    }
    if (id !== this.renderId) return;
    const rows = tableRows(doc);
    const names = doc.columns.map((c) => c.name);
    const types = doc.columns.map((c) => c.type);
    const step = this.steps[this.index];
    const search = h("input", { class: "input small table-filter", type: "search", placeholder: "Filter rows", value: this.filter, "aria-label": "Filter rows" });
    const countEl = h("span", { class: "muted table-count" });
    const tableEl = h("table", { class: "data-table" });
    const pager = h("div", { class: "table-pager" });
    const draw = () => {
      const sortCol = this.sortName === null ? -1 : names.indexOf(this.sortName);
      const shown = visibleRows(rows, { filter: this.filter, sortCol, dir: this.dir });
      const pg = pageOf(shown.length, this.page, TABLE_PAGE);
      this.page = pg.page;
      countEl.textContent = this.filter ? `${fmtNum(shown.length)} of ${fmtNum(rows.length)} rows match` : `${fmtNum(rows.length)} rows × ${names.length} columns at step ${fmtNum(step)}`;
      const head = h(
        "tr",
        {},
        names.map((name, c) => {
          const sorted = c === sortCol;
          const button = h("button", { class: "table-sort", type: "button", title: `Sort by ${name}` }, name, h("span", { class: "sort-mark", text: sorted ? (this.dir === 1 ? " ▲" : " ▼") : "" }));
          button.addEventListener("click", () => {
            if (sorted) this.dir = this.dir === 1 ? -1 : 1;
            else [this.sortName, this.dir] = [name, 1];
            this.page = 0;
            draw();
          });
          return h("th", { class: types[c] === "number" ? "num" : null, "aria-sort": sorted ? (this.dir === 1 ? "ascending" : "descending") : null, scope: "col" }, button);
        }),
      );
      const body = shown.slice(pg.start, pg.end).map((r) => h("tr", {}, rows[r].map((cell, c) => this.cell(cell, types[c], r, names[c]))));
      replace(tableEl, h("thead", {}, head), h("tbody", {}, body));
      if (!shown.length) replace(tableEl, h("thead", {}, head), h("tbody", {}, h("tr", {}, h("td", { class: "muted", colspan: String(Math.max(1, names.length)), text: "No rows match." }))));
      const prev = h("button", { class: "button small", type: "button", disabled: pg.page === 0, text: "Previous" });
      const next = h("button", { class: "button small", type: "button", disabled: pg.page >= pg.pages - 1, text: "Next" });
      prev.addEventListener("click", () => ((this.page = pg.page - 1), draw()));
      next.addEventListener("click", () => ((this.page = pg.page + 1), draw()));
      replace(pager, pg.pages > 1 ? [prev, h("span", { class: "muted", text: `rows ${fmtNum(pg.start + 1)}–${fmtNum(pg.end)} of ${fmtNum(shown.length)}` }), next] : null);
    };
    search.addEventListener("input", () => {
      this.filter = search.value;
      this.page = 0;
      draw();
    });
    draw();
    replace(this.body, h("div", { class: "table-tools" }, search, countEl), h("div", { class: "table-scroll" }, tableEl), pager);
  }

  /**
   * One cell: an image as a thumbnail linking to the full image, numbers right-aligned
   * with non-finite ones marked, empty cells blank.
   * @param {any} cell
   * @param {string} type the column's type
   * @param {number} row
   * @param {string} column
   */
  cell(cell, type, row, column) {
    if (cell === null || cell === undefined) return h("td", { class: "empty" });
    if (isImageCell(cell)) {
      const img = h("img", { class: "table-image", src: fileUrl(this.run, cell.path), alt: cell.caption || `${column} of row ${row + 1}`, width: cell.width, height: cell.height, loading: "lazy" });
      if (cell.width < 160 && cell.height < 160) img.classList.add("pixelated");
      return h("td", { class: "image-cell", title: cell.caption || `${cell.width}×${cell.height}` }, h("a", { href: fileUrl(this.run, cell.path), target: "_blank", rel: "noopener" }, img));
    }
    const x = typeof cell === "boolean" || typeof cell === "string" ? null : numeric(cell);
    if (x !== null) return h("td", { class: ["num", Number.isFinite(x) ? null : "bad"], title: fmtNum(x, 10), text: Number.isInteger(x) ? fmtNum(x) : fmtNum(x, 6) });
    return h("td", { class: type === "mixed" ? "mixed" : null, text: cellText(cell) });
  }
}

class TensorCard extends MediaCard {
  /**
   * @param {any} run
   * @param {string} key
   */
  constructor(run, key) {
    super(run, key, "tensor");
    /** @type {(number | null)[] | null} [rowAxis, colAxis]; null: not shown (fewer than 2 dimensions) */
    this.axes = null;
    /** @type {number[]} per axis, the index shown along axes that are not rows or columns */
    this.fixed = [];
    this.requestId = 0;
    /** @type {TensorView | null} */
    this.view = null;
  }

  render() {
    const v = this.values[this.index];
    if (!v) return;
    /** @type {number[]} */
    const shape = v.shape || [];
    const nd = shape.length;
    if (!this.axes || this.axes.some((a) => /** @type {number} */ (a) >= nd) || this.fixed.length !== nd) {
      this.axes = nd >= 2 ? [nd - 2, nd - 1] : nd === 1 ? [null, 0] : [null, null];
      this.fixed = shape.map(() => 0);
    }
    const stats = ["min", "max", "mean", "std", "norm"].map((s) => [s, numeric(v[s])]);
    if (v.zeros) stats.push(["zeros", v.zeros]);
    const counts = ["nan", "inf", "ninf"].map((s) => [s, v[s]]).filter(([, c]) => c); // the bad ones
    const download = h("a", { class: "button small", href: apiUrl(`/runs/${seg(this.run.id)}/tensor.npy${qs({ path: v.path, name: `${this.key.replace(/[^A-Za-z0-9_.-]+/g, "_")}-step${this.steps[this.index]}` })}`), download: "" }, icon("download"), ".npy");
    const canvas = h("canvas", { class: "tensor-canvas" });
    const hoverEl = h("div", { class: "muted tensor-hover", text: " " });
    const scaleEl = h("div", { class: "scale" });
    const statusEl = h("div", { class: "muted", text: "Loading slice…" });
    this.view = { canvas, hoverEl, scaleEl, statusEl };
    replace(
      this.body,
      h(
        "div",
        { class: "tensor-facts" },
        h("span", { class: "fact" }, "shape ", h("b", { text: fmtShape(shape) })),
        h("span", { class: "fact" }, "dtype ", h("b", { text: v.dtype })),
        h("span", { class: "fact" }, "file ", h("b", { text: fmtBytes(v.size) + (v.compressed ? " (gzip)" : "") })),
        download,
      ),
      h(
        "div",
        { class: "stats compact" },
        stats.map(([s, x]) => h("div", { class: ["stat", x !== null && !Number.isFinite(x) ? "bad" : null], title: `${s}: ${fmtNum(x, 10)}` }, h("span", { class: "stat-name", text: s }), h("span", { class: "stat-value", text: fmtCompact(x) }))),
        counts.map(([s, c]) => h("div", { class: "stat bad", title: `${s}: ${fmtNum(c)}` }, h("span", { class: "stat-name", text: s }), h("span", { class: "stat-value", text: fmtCompact(c) }))),
      ),
      nd > 2 ? this.sliceControls(shape) : null,
      statusEl,
      h("div", { class: "tensor-view" }, canvas),
      scaleEl,
      hoverEl,
    );
    this.fetchSlice(v);
  }

  /**
   * Which axes are rows and columns, and a slider for the index along each other axis
   * (tensors of 3 dimensions or more).
   * @param {number[]} shape
   */
  sliceControls(shape) {
    const nd = shape.length;
    const axes = /** @type {(number | null)[]} */ (this.axes);
    /** @param {0 | 1} which rows or columns */
    const axisSel = (which) => {
      const sel = h("select", { class: "input small", "aria-label": which ? "Columns axis" : "Rows axis" }, shape.map((n, a) => h("option", { value: a, selected: axes[which] === a, text: `axis ${a} (${n})` })));
      sel.addEventListener("change", () => {
        const a = Number(sel.value);
        const other = axes[1 - which];
        if (a === other) axes[1 - which] = axes[which];
        axes[which] = a;
        this.render();
      });
      return sel;
    };
    const fixedInputs = [];
    for (let a = 0; a < nd; a++) {
      if (axes.includes(a)) continue;
      const input = h("input", { type: "range", min: "0", max: String(shape[a] - 1), value: String(this.fixed[a]), "aria-label": `Index along axis ${a}` });
      const out = h("output", { text: `[${a}] = ${this.fixed[a]}` });
      input.addEventListener("input", () => {
        this.fixed[a] = Number(input.value);
        out.textContent = `[${a}] = ${this.fixed[a]}`;
        this.fetchSlice(this.values[this.index]);
      });
      fixedInputs.push(h("label", { class: "slice-index" }, out, input));
    }
    return h("div", { class: "slice-controls" }, h("span", { class: "muted", text: "rows" }), axisSel(0), h("span", { class: "muted", text: "cols" }), axisSel(1), fixedInputs);
  }

  /**
   * The slice's `index` parameter: ":" for the rows and columns axes, the index for others.
   * @param {number} nd
   */
  indexParam(nd) {
    const axes = /** @type {(number | null)[]} */ (this.axes);
    const parts = [];
    for (let a = 0; a < nd; a++) parts.push(axes.includes(a) ? ":" : String(this.fixed[a]));
    return parts.join(",");
  }

  /**
   * Fetch and draw the slice of a value the controls choose (a newer request wins).
   * @param {TypedValue} v
   */
  async fetchSlice(v) {
    const id = ++this.requestId;
    const nd = (v.shape || []).length;
    let res;
    try {
      res = await api(`/runs/${seg(this.run.id)}/tensor${qs({ path: v.path, index: nd ? this.indexParam(nd) : "" })}`);
    } catch (err) {
      if (id === this.requestId) /** @type {TensorView} */ (this.view).statusEl.textContent = /** @type {Error} */ (err).message;
      return;
    }
    if (id !== this.requestId) return;
    const view = /** @type {TensorView} */ (this.view);
    const axes = /** @type {(number | null)[]} */ (this.axes);
    // The server keeps axes in ascending order; transpose when rows axis > cols axis.
    let { rows, cols } = res;
    let values = Float64Array.from(res.values, (x) => numeric(x) ?? NaN);
    let [sr, sc] = res.stride;
    if (axes[0] !== null && axes[0] > /** @type {number} */ (axes[1])) {
      const t = new Float64Array(values.length);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = values[r * cols + c];
      values = t;
      [rows, cols] = [cols, rows];
      [sr, sc] = [sc, sr];
    }
    view.statusEl.textContent = sr > 1 || sc > 1 ? `Large slice: showing every ${sr > 1 ? sr + "th row" : "row"} and ${sc > 1 ? sc + "th column" : "column"}` : "";
    view.statusEl.hidden = !view.statusEl.textContent;
    this.draw(view, rows, cols, values, res.min, res.max, sr, sc);
  }

  /**
   * Draw a slice (row-major values) as a heatmap with its colour scale; hovering a cell
   * names its index in the tensor and its value.
   * @param {TensorView} view
   * @param {number} rows
   * @param {number} cols
   * @param {Float64Array} values
   * @param {number | null} lo the slice's finite min and max (null when none is finite)
   * @param {number | null} hi
   * @param {number} [sr] the strides the server took (1: every row, column)
   * @param {number} [sc]
   */
  draw(view, rows, cols, values, lo, hi, sr = 1, sc = 1) {
    const host = view.canvas.parentElement;
    const maxW = Math.max(120, (host && host.clientWidth) || 360);
    const cell = Math.max(1, Math.min(40, Math.floor(maxW / cols), Math.floor(360 / rows) || 1));
    const w = cols * cell;
    const hgt = rows * cell;
    const { ctx } = fitCanvas(view.canvas, w, hgt);
    const scale = valueScale(lo ?? 0, hi ?? 1);
    paintGrid(ctx, rows, cols, values, scale.index, lut(scale.name), { x: 0, y: 0, w, h: hgt });
    const bar = h("canvas");
    replace(view.scaleEl, h("span", { title: fmtNum(scale.lo, 10), text: fmtCompact(scale.lo) }), bar, h("span", { title: fmtNum(scale.hi, 10), text: fmtCompact(scale.hi) }), h("span", { class: "muted special", text: "non-finite" }));
    colorBar(bar, scale.name, 160);
    view.canvas.onpointermove = (e) => {
      const r = view.canvas.getBoundingClientRect();
      const c = Math.floor((e.clientX - r.left) / cell);
      const rr = Math.floor((e.clientY - r.top) / cell);
      if (c < 0 || rr < 0 || c >= cols || rr >= rows) return;
      view.hoverEl.textContent = `[${rr * sr}, ${c * sc}] = ${fmtNum(values[rr * cols + c])}`;
    };
  }
}
