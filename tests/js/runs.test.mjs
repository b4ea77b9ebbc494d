// Facts about runs: colours, duration, config values, the runs table's default columns and order.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { PALETTE, colorFor, configAt, defaultColumns, firstDirection, flatten, runDuration } from "../../gradexp/server/static/assets/js/lib/runs.js";

describe("runDuration", () => {
  test("a finished run: start to finish", () => {
    assert.equal(runDuration({ started_at: 100, finished_at: 160, state: "finished" }, 1e9), 60);
  });

  test("a running run: start to now", () => {
    assert.equal(runDuration({ started_at: 100, finished_at: null, state: "running", heartbeat_at: 120 }, 130), 30);
  });

  test("a crashed run: start to its last heartbeat", () => {
    assert.equal(runDuration({ started_at: 100, finished_at: null, state: "crashed", heartbeat_at: 150 }, 1e9), 50);
  });
});

describe("flatten", () => {
  test("nested objects become dotted keys; arrays, typed values and empty objects are leaves", () => {
    const nan = { _type: "float", value: "NaN" };
    assert.deepEqual(flatten({ a: { b: 1, c: { d: 2 } }, e: [1, 2], f: {}, g: nan, h: null }), [
      ["a.b", 1],
      ["a.c.d", 2],
      ["e", [1, 2]],
      ["f", {}],
      ["g", nan],
      ["h", null],
    ]);
  });

  test("a prefix, and nothing to flatten", () => {
    assert.deepEqual(flatten({ pid: 7 }, "host."), [["host.pid", 7]]);
    assert.deepEqual(flatten(null), []);
    assert.deepEqual(flatten("x"), []);
  });
});

describe("configAt", () => {
  const config = { model: { width: 3, act: null }, "a.b": 1, a: { b: 2 }, zero: 0 };

  test("follows a dotted path", () => {
    assert.equal(configAt(config, "model.width"), 3);
    assert.equal(configAt(config, "model.act"), null);
    assert.equal(configAt(config, "zero"), 0);
  });

  test("a key that holds dots itself wins", () => {
    assert.equal(configAt(config, "a.b"), 1);
  });

  test("undefined when the path is not there", () => {
    assert.equal(configAt(config, "model.depth"), undefined);
    assert.equal(configAt(config, "model.width.x"), undefined);
    assert.equal(configAt(null, "x"), undefined);
  });

  test("inherited properties are not config values", () => {
    assert.equal(configAt(config, "constructor"), undefined);
    assert.equal(configAt(config, "model.toString"), undefined);
  });
});

describe("firstDirection", () => {
  test("names A→Z, losses and times lowest first, the rest highest first", () => {
    assert.equal(firstDirection("name"), "");
    assert.equal(firstDirection("summary:val/loss"), "");
    assert.equal(firstDirection("summary:wer"), "");
    assert.equal(firstDirection("config:train_time"), "");
    assert.equal(firstDirection("summary:val/acc"), "-");
    assert.equal(firstDirection("started_at"), "-");
    assert.equal(firstDirection("last_step"), "-");
  });
});

describe("defaultColumns", () => {
  test("losses, then accuracies, then the rest; at most 4; no private keys", () => {
    assert.deepEqual(defaultColumns(["val/acc", "_runtime", "lr", "train/loss", "zeta", "f1"]), ["summary:train/loss", "summary:f1", "summary:val/acc", "summary:lr"]);
  });

  test("none for a project without summary keys", () => {
    assert.deepEqual(defaultColumns([]), []);
  });
});

describe("run colours", () => {
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
});
