// define_metric definitions in the UI: which applies to a key, and the x of a step on a
// step_metric's axis.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { BoardMetrics, MetricDefs, axisValues, globRegExp } from "../../gradexp/server/static/assets/js/lib/metrics.js";

/** @param {string} name @param {object} [fields] */
const def = (name, fields = {}) => ({ name, step_metric: null, summary: [], goal: null, hidden: false, ...fields });

describe("MetricDefs", () => {
  const defs = new MetricDefs([
    def("val/*", { step_metric: "epoch" }),
    def("val/acc", { step_metric: "global_step" }),
    def("*", { hidden: true }),
    def("train/*", { step_metric: "global_step" }),
  ]);

  test("an exact name wins over globs", () => {
    assert.equal(defs.stepMetric("val/acc"), "global_step");
  });

  test("else the last-defined glob that matches", () => {
    assert.equal(defs.stepMetric("train/loss"), "global_step");
    assert.equal(defs.stepMetric("val/loss"), null); // "*" came after "val/*"
    assert.equal(defs.hidden("val/loss"), true);
    assert.equal(defs.hidden("val/acc"), false);
  });

  test("statistics series and a key charted against itself", () => {
    assert.equal(defs.for("val/w#norm"), null);
    assert.equal(new MetricDefs([def("epoch", { step_metric: "epoch" })]).stepMetric("epoch"), null);
  });

  test("globs match slashes and take other characters literally", () => {
    assert.ok(globRegExp("a*").test("a/b/c"));
    assert.ok(!globRegExp("a.b*").test("axb"));
    assert.ok(globRegExp("a(1)*").test("a(1)/x"));
  });
});

describe("axisValues", () => {
  test("the axis value at each step, interpolated between the axis' points", () => {
    const xs = axisValues([0, 5, 10, 15, 30], 5, [0, 10, 20], [0, 1, 2], 3);
    assert.deepEqual([...xs], [0, 0.5, 1, 1.5, 2]);
  });

  test("its first value before it, none without points", () => {
    assert.deepEqual([...axisValues([1, 2], 2, [5], [7], 1)], [7, 7]);
    assert.ok(Number.isNaN(axisValues([1], 1, [], [], 0)[0]));
  });
});

describe("BoardMetrics", () => {
  const board = new BoardMetrics([[def("val/*", { step_metric: "epoch" })], [def("val/loss", { step_metric: "step2", hidden: true })]]);

  test("the first run that defines an axis for a key gives it", () => {
    assert.equal(board.stepMetric("val/loss"), "epoch");
    assert.equal(board.stepMetric("train/loss"), null);
  });

  test("a key hidden by any run is hidden", () => {
    assert.equal(board.hidden("val/loss"), true);
    assert.equal(board.hidden("val/acc"), false);
  });

  test("one axis series per step_metric and run, shared", () => {
    const run = { id: "r1", name: "one", color: "#000" };
    assert.equal(board.axis("epoch", run), board.axis("epoch", run));
    assert.notEqual(board.axis("epoch", run), board.axis("epoch", { ...run, id: "r2" }));
  });
});
