// @ts-check
// gradexp sign-in pages: small progressive enhancements. Everything works without it.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Ask before revoking a key (forms marked data-confirm).
  for (const form of /** @type {NodeListOf<HTMLFormElement>} */ (document.querySelectorAll("form[data-confirm]"))) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }

  // One submit per form: a double click must not post twice (two keys, two sessions).
  for (const form of /** @type {NodeListOf<HTMLFormElement>} */ (document.querySelectorAll("form[data-once]"))) {
    form.addEventListener("submit", (event) => {
      if (form.dataset.sent) {
        event.preventDefault();
        return;
      }
      form.dataset.sent = "1";
      // Disable the buttons after this tick, so the clicked button's name=value is sent.
      setTimeout(() => {
        for (const button of form.querySelectorAll("button")) button.disabled = true;
      }, 0);
    });
  }

  // "Password again" fields: say so before the server does.
  for (const confirmField of /** @type {NodeListOf<HTMLInputElement>} */ (document.querySelectorAll("input[data-match]"))) {
    const form = confirmField.form;
    const original = /** @type {HTMLInputElement | null} */ (form && form.elements.namedItem(/** @type {string} */ (confirmField.dataset.match)));
    if (!original) continue;
    const check = () => {
      const differs = confirmField.value !== "" && confirmField.value !== original.value;
      confirmField.setCustomValidity(differs ? "The two passwords do not match." : "");
      confirmField.classList.toggle("mismatch", differs);
    };
    confirmField.addEventListener("input", check);
    original.addEventListener("input", check);
  }

  // Copy a new key to the clipboard.
  for (const button of /** @type {NodeListOf<HTMLButtonElement>} */ (document.querySelectorAll("button[data-copy]"))) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(/** @type {string} */ (button.dataset.copy));
      if (!source) return;
      const text = (source.textContent || "").trim();
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch {
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = /** @type {Selection} */ (window.getSelection());
        selection.removeAllRanges();
        selection.addRange(range);
        button.textContent = "Press Ctrl+C";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 2000);
    });
  }
});
