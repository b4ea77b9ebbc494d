// @ts-check
// Changing runs from the pages: the run page's inline editor (name, tags, notes, delete),
// renaming from the runs table, and the confirmation before runs are deleted.
// The server decides who may (it answers 403/404 otherwise); the message it sends is shown.

import { api, seg } from "./api.js";
import { h, replace } from "./dom.js";
import { parseTags } from "./lib/tags.js";

/**
 * PATCH a run's name, notes or tags; resolves to the run as the server now describes it.
 * @param {string} runId
 * @param {{name?: string, notes?: string | null, tags?: string[]}} changes
 * @returns {Promise<any>}
 */
export function updateRun(runId, changes) {
  return api(`/runs/${seg(runId)}`, { method: "PATCH", body: changes });
}

/**
 * The run page's editor: a form under the header with the name, tags and notes, Save,
 * Cancel, and "Delete run" (which asks first, in the page). `onSaved(run)` gets the
 * changed run; `onDeleted()` is called once the run is gone.
 * @param {any} run
 * @param {{onSaved: (run: any) => void, onDeleted: () => void, onClose: () => void}} handlers
 * @returns {HTMLElement}
 */
export function runEditor(run, { onSaved, onDeleted, onClose }) {
  const name = h("input", { class: "input", name: "name", value: run.name, maxlength: 256, "aria-label": "Run name" });
  const tags = h("input", { class: "input", name: "tags", value: (run.tags || []).join(", "), placeholder: "baseline, lr-sweep", "aria-label": "Tags, separated by commas" });
  const notes = h("textarea", { class: "input notes-input", name: "notes", rows: 3, placeholder: "What this run tried, what it showed", "aria-label": "Notes" });
  notes.value = run.notes || "";
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const save = h("button", { type: "submit", class: "button primary", text: "Save" });
  const cancel = h("button", { type: "button", class: "button ghost", text: "Cancel", on: { click: onClose } });
  const confirmSlot = h("div", { class: "confirm-slot" });
  const del = h("button", {
    type: "button",
    class: "button danger",
    text: "Delete run",
    on: {
      click: () =>
        replace(
          confirmSlot,
          confirmBar(`Delete run ${run.name}? Its history, files and exports are removed for good.`, "Delete run", async () => {
            await api(`/runs/${seg(run.id)}`, { method: "DELETE" });
            onDeleted();
          }, () => replace(confirmSlot)),
        ),
    },
  });
  /** @param {string} message */
  const fail = (message) => {
    error.textContent = message;
    error.hidden = false;
  };
  const form = h(
    "form",
    { class: "run-editor card pad", "aria-label": "Edit run" },
    h("label", { class: "field" }, h("span", { text: "Name" }), name),
    h("label", { class: "field" }, h("span", { text: "Tags" }), tags),
    h("label", { class: "field" }, h("span", { text: "Notes" }), notes),
    error,
    h("div", { class: "editor-actions" }, save, cancel, h("div", { class: "spacer" }), del),
    confirmSlot,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    save.disabled = true;
    try {
      const changed = await updateRun(run.id, { name: name.value.trim(), tags: parseTags(tags.value), notes: notes.value.trim() || null });
      onSaved(changed);
    } catch (err) {
      fail(/** @type {Error} */ (err).message);
    } finally {
      save.disabled = false;
    }
  });
  form.addEventListener("keydown", (e) => {
    if (e.key === "Escape") onClose();
  });
  queueMicrotask(() => name.focus());
  return form;
}

/**
 * An in-page confirmation: a message, a red button that runs `action`, and Cancel.
 * A failed action shows the server's message in the bar.
 * @param {string} message
 * @param {string} label the red button's text
 * @param {() => Promise<void>} action
 * @param {() => void} onCancel
 * @returns {HTMLElement}
 */
export function confirmBar(message, label, action, onCancel) {
  const error = h("span", { class: "form-error", role: "alert", hidden: true });
  const go = h("button", { type: "button", class: "button danger solid", text: label });
  go.addEventListener("click", async () => {
    go.disabled = true;
    try {
      await action();
    } catch (err) {
      error.textContent = /** @type {Error} */ (err).message;
      error.hidden = false;
      go.disabled = false;
    }
  });
  return h(
    "div",
    { class: "confirm-bar", role: "alertdialog", "aria-label": "Confirm" },
    h("span", { text: message }),
    error,
    h("div", { class: "spacer" }),
    go,
    h("button", { type: "button", class: "button ghost", text: "Cancel", on: { click: onCancel } }),
  );
}

/**
 * Rename in place: turns `link` (a run's name) into an input; Enter saves, Escape or
 * leaving the field puts the link back. `onSaved(run)` gets the renamed run.
 * @param {HTMLElement} link
 * @param {any} run
 * @param {(run: any) => void} onSaved
 */
export function renameInPlace(link, run, onSaved) {
  const input = h("input", { class: "input small rename-input", value: run.name, maxlength: 256, "aria-label": `New name for run ${run.name}` });
  let done = false;
  const restore = () => {
    if (done) return;
    done = true;
    input.replaceWith(link);
  };
  input.addEventListener("keydown", async (e) => {
    if (e.key === "Escape") restore();
    if (e.key !== "Enter") return;
    e.preventDefault();
    const name = input.value.trim();
    if (!name || name === run.name) return restore();
    input.disabled = true;
    try {
      const changed = await updateRun(run.id, { name });
      done = true;
      onSaved(changed);
    } catch (err) {
      input.disabled = false;
      input.title = /** @type {Error} */ (err).message;
      input.classList.add("invalid");
    }
  });
  input.addEventListener("blur", () => {
    if (!input.disabled) restore();
  });
  link.replaceWith(input);
  input.focus();
  input.select();
}
