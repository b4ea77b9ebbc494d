// @ts-check
// The Files tab of a run: the run's files with size and time, a preview (text, bounded;
// images), and a download link for each. New files show up while the run is live.

import { API, api, seg } from "./api.js";
import { emptyState, h, replace } from "./dom.js";
import { fmtAgo, fmtBytes, fmtDateTime } from "./lib/format.js";
import { TEXT_PREVIEW_BYTES, isValueBlob, listedFiles, previewKind, previewText } from "./lib/files.js";

/** Reload the list at most this often while the run is live (ms). */
const REFRESH_MS = 5000;

export class FilesView {
  /**
   * @param {HTMLElement} el
   * @param {any} run
   */
  constructor(el, run) {
    this.el = el;
    this.run = run;
    /** @type {any[]} */
    this.files = [];
    /** @type {string | null} */
    this.selected = null;
    this.withBlobs = false;
    this.lastLoad = 0;
    /** @type {AbortController | null} */
    this.previewing = null;
    this.list = h("div", { class: "files-list" });
    this.preview = h("div", { class: "files-preview" });
    const blobs = h("input", { type: "checkbox" });
    blobs.addEventListener("change", () => {
      this.withBlobs = blobs.checked;
      this.draw();
    });
    this.blobToggle = h("label", { class: "check", hidden: true }, blobs, h("span", { text: "show logged images and tensors" }));
    this.info = h("span", { class: "muted" });
    replace(el, h("div", { class: "toolbar" }, this.info, h("div", { class: "spacer" }), this.blobToggle), h("div", { class: "files" }, this.list, this.preview));
    this.reload();
  }

  /** The run changed (live): look for new files, at most every few seconds. */
  onRunChanged() {
    if (Date.now() - this.lastLoad >= REFRESH_MS) this.reload();
  }

  async reload() {
    this.lastLoad = Date.now();
    try {
      const doc = await api(`/runs/${seg(this.run.id)}/files`);
      this.files = doc.files;
    } catch (err) {
      replace(this.list, h("p", { class: "warn", text: String(/** @type {Error} */ (err).message || err) }));
      return;
    }
    this.draw();
  }

  /** @param {string} path */
  url(path) {
    return `${API}/runs/${seg(this.run.id)}/files/${path.split("/").map(seg).join("/")}`;
  }

  draw() {
    const blobs = this.files.filter((f) => isValueBlob(f.path)).length;
    this.blobToggle.hidden = blobs === 0;
    const shown = listedFiles(this.files, this.withBlobs);
    const total = shown.reduce((n, f) => n + f.size, 0);
    this.info.textContent = `${shown.length} file${shown.length === 1 ? "" : "s"}, ${fmtBytes(total)}`;
    if (!shown.length) {
      replace(this.list, emptyState("No files yet", "Save files with gradexp.save(\"*.txt\") or run.save(path): they show up here, with previews."));
      replace(this.preview);
      return;
    }
    const rows = shown.map((f) => {
      const open = h("button", { class: ["link", f.path === this.selected ? "active" : null], type: "button", text: f.path, title: "Preview" });
      open.addEventListener("click", () => this.show(f));
      return h(
        "tr",
        { class: f.path === this.selected ? "selected" : null },
        h("td", { class: "file-name" }, open),
        h("td", { class: "num", text: fmtBytes(f.size) }),
        h("td", { title: fmtDateTime(f.created_at), text: fmtAgo(f.created_at) }),
        h("td", {}, h("a", { href: this.url(f.path), download: f.path.split("/").pop(), text: "Download" })),
      );
    });
    replace(this.list, h("table", { class: "table files-table" }, h("thead", {}, h("tr", {}, h("th", { text: "Name" }), h("th", { class: "num", text: "Size" }), h("th", { text: "Updated" }), h("th", {}))), h("tbody", {}, rows)));
    const current = shown.find((f) => f.path === this.selected);
    if (!current) this.show(shown[0]);
  }

  /** @param {any} file */
  async show(file) {
    const changed = this.selected !== file.path;
    this.selected = file.path;
    for (const tr of this.list.querySelectorAll("tr.selected")) tr.classList.remove("selected");
    if (changed) this.draw();
    if (this.previewing) this.previewing.abort();
    const kind = previewKind(file.path, file.content_type, file.size);
    const head = h("div", { class: "preview-head" }, h("b", { text: file.path }), h("span", { class: "muted", text: ` ${fmtBytes(file.size)} · ${file.content_type}` }));
    if (kind === "image") {
      replace(this.preview, head, h("img", { class: "file-image", src: this.url(file.path), alt: file.path }));
      return;
    }
    if (kind !== "text") {
      replace(this.preview, head, h("p", { class: "muted", text: "No preview for this kind of file: download it." }));
      return;
    }
    replace(this.preview, head, h("p", { class: "muted", text: "Loading…" }));
    const controller = new AbortController();
    this.previewing = controller;
    try {
      const bytes = await readHead(this.url(file.path), TEXT_PREVIEW_BYTES, controller.signal);
      const p = previewText(bytes, file.size);
      if (p.binary) {
        replace(this.preview, head, h("p", { class: "muted", text: "This file is binary: download it." }));
        return;
      }
      const more = p.truncated ? h("p", { class: "muted", text: `The first ${fmtBytes(TEXT_PREVIEW_BYTES)} of ${fmtBytes(file.size)}: download the file for the rest.` }) : null;
      replace(this.preview, head, h("pre", { class: "file-text", text: p.text }), more);
    } catch (err) {
      if (/** @type {Error} */ (err).name !== "AbortError") replace(this.preview, head, h("p", { class: "warn", text: "Could not load the preview." }));
    }
  }
}

/**
 * The first `limit` bytes of a URL, reading no further (the rest of the body is cancelled).
 * @param {string} url
 * @param {number} limit
 * @param {AbortSignal} signal
 * @returns {Promise<Uint8Array>}
 */
async function readHead(url, limit, signal) {
  const resp = await fetch(url, { credentials: "include", signal });
  if (!resp.ok || !resp.body) throw new Error(`HTTP ${resp.status}`);
  const reader = resp.body.getReader();
  const out = new Uint8Array(limit);
  let n = 0;
  while (n < limit) {
    const { done, value } = await reader.read();
    if (done) break;
    const take = Math.min(value.length, limit - n);
    out.set(value.subarray(0, take), n);
    n += take;
  }
  reader.cancel().catch(() => {});
  return out.subarray(0, n);
}
