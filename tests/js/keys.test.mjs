// Chart groups of metric keys.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { groupOf, groupOrder } from "../../gradexp/server/static/assets/js/lib/keys.js";

describe("groupOf", () => {
  test("the prefix up to the first slash", () => {
    assert.equal(groupOf("train/loss"), "train");
    assert.equal(groupOf("a/b/c"), "a");
  });

  test("no prefix: the plain group", () => {
    assert.equal(groupOf("loss"), "");
    assert.equal(groupOf("/loss"), "");
  });

  test("statistics of histograms get their own group per prefix", () => {
    assert.equal(groupOf("grad/fc#norm"), "grad # stats");
    assert.equal(groupOf("w#norm"), "histograms # stats");
    assert.equal(groupOf("a#b/c"), "histograms # stats");
  });
});

describe("groupOrder", () => {
  test("train, val, eval... first; then A→Z; then plain keys; then statistics", () => {
    const groups = ["zeta", "", "grad # stats", "test", "alpha", "val", "eval", "train", "histograms # stats"];
    assert.deepEqual(groups.sort(groupOrder), ["train", "val", "eval", "test", "alpha", "zeta", "", "grad # stats", "histograms # stats"]);
  });

  test("validation sorts with the other priority prefixes", () => {
    assert.deepEqual(["aaa", "validation", "valid"].sort(groupOrder), ["valid", "validation", "aaa"]);
  });
});
