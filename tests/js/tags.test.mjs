// Tags typed in the run editor.
import assert from "node:assert/strict";
import { test } from "node:test";

import { parseTags } from "../../gradexp/server/static/assets/js/lib/tags.js";

test("commas separate, blanks fold, empty and repeated tags go", () => {
  assert.deepEqual(parseTags("a, b  c,,d , a"), ["a", "b c", "d"]);
  assert.deepEqual(parseTags("   "), []);
  assert.deepEqual(parseTags("sweep-1"), ["sweep-1"]);
});
