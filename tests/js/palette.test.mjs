// Run colours.
import assert from "node:assert/strict";
import { test } from "node:test";

import { PALETTE, colorFor } from "../../gradexp/server/static/assets/js/lib/runs.js";

test("20 distinct hex colours", () => {
  assert.equal(PALETTE.length, 20);
  assert.equal(new Set(PALETTE).size, 20);
  for (const c of PALETTE) assert.match(c, /^#[0-9a-f]{6}$/);
});

test("the palette repeats, for negative indices too", () => {
  assert.equal(colorFor(0), PALETTE[0]);
  assert.equal(colorFor(19), PALETTE[19]);
  assert.equal(colorFor(20), PALETTE[0]);
  assert.equal(colorFor(-1), PALETTE[19]);
  assert.equal(colorFor(-41), PALETTE[19]);
});
