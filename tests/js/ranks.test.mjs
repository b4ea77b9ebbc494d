import assert from "node:assert/strict";
import { test } from "node:test";

import { pickRank, rankHref, rankTrouble, writerLabel } from "../../gradexp/server/static/assets/js/lib/ranks.js";

const run = {
  writers: [
    { rank: 0, state: "finished", exit_code: 0, last_step: 99 },
    { rank: 1, state: "failed", exit_code: 3, last_step: 42 },
    { rank: 2, state: "crashed", exit_code: null, last_step: 7 },
  ],
};

test("the page's rank is one the run has", () => {
  assert.equal(pickRank(run, "?rank=2"), 2);
  assert.equal(pickRank(run, "?rank=9"), 0);
  assert.equal(pickRank(run, "?rank=-1"), 0);
  assert.equal(pickRank(run, ""), 0);
  assert.equal(pickRank({}, "?rank=1"), 0);
});

test("each rank says its state and, when it failed, its exit code", () => {
  assert.equal(writerLabel(run.writers[0]), "rank 0 · finished");
  assert.equal(writerLabel(run.writers[1]), "rank 1 · failed, exit code 3");
  assert.equal(writerLabel(run.writers[2]), "rank 2 · crashed");
});

test("the trouble line names the failed and the crashed ranks", () => {
  assert.equal(rankTrouble(run), "rank 1 failed (exit code 3); rank 2 crashed (no heartbeat)");
  assert.equal(rankTrouble({ writers: [run.writers[0]] }), "");
  assert.equal(rankTrouble({}), "");
});

test("rank links keep the tab", () => {
  assert.equal(rankHref(1, "#system"), "?rank=1#system");
  assert.equal(rankHref(0, "#logs"), "?#logs");
});
