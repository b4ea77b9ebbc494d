import assert from "node:assert/strict";
import { test } from "node:test";

import { TEXT_PREVIEW_BYTES, isValueBlob, listedFiles, previewKind, previewText } from "../../gradexp/server/static/assets/js/lib/files.js";

const SHA = "a".repeat(64);

test("logged values' blobs are told apart from saved files", () => {
  assert.equal(isValueBlob(`${SHA}.png`), true);
  assert.equal(isValueBlob(`ckpt/${SHA}.png`), false);
  assert.equal(isValueBlob("model.pt"), false);
  const files = [{ path: `${SHA}.npy` }, { path: "z.txt" }, { path: "a/b.json" }];
  assert.deepEqual(listedFiles(files, false).map((f) => f.path), ["a/b.json", "z.txt"]);
  assert.deepEqual(listedFiles(files, true).map((f) => f.path), ["a/b.json", "z.txt", `${SHA}.npy`]);
});

test("previews: images and text by type or extension, others download only", () => {
  assert.equal(previewKind("x.png", "image/png", 10), "image");
  assert.equal(previewKind("x.png", "image/png", 64 * 1024 * 1024), null);
  assert.equal(previewKind("requirements.txt", "text/plain; charset=utf-8", 10), "text");
  assert.equal(previewKind("train.log", "application/octet-stream", 10), "text");
  assert.equal(previewKind("cfg.json", "application/json", 10), "text");
  assert.equal(previewKind("model.pt", "application/octet-stream", 10), null);
});

test("a text preview is bounded and never ends in half a character", () => {
  const enc = new TextEncoder();
  const whole = enc.encode("héllo");
  assert.deepEqual(previewText(whole, whole.length), { text: "héllo", truncated: false, binary: false });
  const cut = whole.subarray(0, 2); // "h" and the first byte of "é"
  assert.deepEqual(previewText(cut, whole.length), { text: "h", truncated: true, binary: false });
  const big = new Uint8Array(TEXT_PREVIEW_BYTES + 10).fill(97);
  const p = previewText(big, big.length);
  assert.equal(p.text.length, TEXT_PREVIEW_BYTES);
  assert.equal(p.truncated, true);
  assert.equal(previewText(new Uint8Array([1, 0, 2]), 3).binary, true);
});
