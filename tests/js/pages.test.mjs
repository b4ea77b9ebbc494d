// The UI's layering: a page (static/assets/js/pages/) never imports another page; what two
// pages share lives in a module outside pages/.
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { test } from "node:test";

const PAGES = new URL("../../gradexp/server/static/assets/js/pages/", import.meta.url);

test("no page imports another page", () => {
  const pages = readdirSync(PAGES).filter((f) => f.endsWith(".js"));
  assert.ok(pages.length > 3);
  for (const page of pages) {
    const source = readFileSync(new URL(page, PAGES), "utf8");
    const imports = [...source.matchAll(/^import[^;]*?from\s+["']([^"']+)["']/gms)].map((m) => m[1]);
    assert.ok(imports.length > 0, `${page} imports nothing?`);
    const siblings = imports.filter((spec) => spec.startsWith("./") || /(^|\/)pages\//.test(spec));
    assert.deepEqual(siblings, [], `pages/${page} imports another page`);
  }
});
