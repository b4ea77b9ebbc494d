// The gradient explorer's analysis: norms, ratios, flags and the table's order.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { EXPLODING_VS_MEDIAN, VANISHING_ABS, analyse, everNonfinite, learningRate, median, sections, sortRows } from "../../gradexp/server/static/assets/js/lib/gradients.js";

const F = (value) => ({ _type: "float", value });
const param = (name) => ({ key: `gradients/${name}`, name });
const byName = (rows) => Object.fromEntries(rows.map((r) => [r.name, r]));

describe("median", () => {
  test("of the finite values only", () => {
    assert.equal(median([3]), 3);
    assert.equal(median([1, 3]), 2);
    assert.equal(median([5, NaN, Infinity, null, 1, -Infinity]), 3);
    assert.equal(median([9, 1, 5]), 5);
  });

  test("NaN when there is none", () => {
    assert.ok(Number.isNaN(median([])));
    assert.ok(Number.isNaN(median([NaN, null])));
  });
});

describe("sections", () => {
  test("by prefix: gradients, parameters, then A→Z (unprefixed keys are histograms)", () => {
    const secs = sections(["zeta/y", "parameters/x", "plain", "gradients/x", "alpha/z", "/lead"]);
    assert.deepEqual([...secs.keys()], ["gradients", "parameters", "alpha", "histograms", "zeta"]);
    assert.deepEqual(secs.get("gradients"), [{ key: "gradients/x", name: "x" }]);
    assert.deepEqual(secs.get("histograms"), [
      { key: "plain", name: "plain" },
      { key: "/lead", name: "/lead" },
    ]);
  });

  test("nested names keep their slashes", () => {
    assert.deepEqual(sections(["gradients/enc/0.weight"]).get("gradients"), [{ key: "gradients/enc/0.weight", name: "enc/0.weight" }]);
  });

  test("no keys, no sections", () => {
    assert.equal(sections([]).size, 0);
  });
});

describe("learningRate", () => {
  test("found under the usual names", () => {
    assert.equal(learningRate({ lr: 0.01 }), 0.01);
    assert.equal(learningRate({ learning_rate: 3e-4 }), 3e-4);
    assert.equal(learningRate({ optimizer: { lr: 0.1 } }), 0.1);
    assert.equal(learningRate({ optim: { lr: 0.2 } }), 0.2);
    assert.equal(learningRate({ lr: "x", learning_rate: 2 }), 2);
  });

  test("only a positive finite number counts", () => {
    for (const lr of ["0.01", 0, -1, NaN, Infinity, null, true]) assert.equal(learningRate({ lr }), null);
    assert.equal(learningRate(null), null);
    assert.equal(learningRate({}), null);
  });
});

describe("everNonfinite", () => {
  test("adds the worst NaN, inf and -inf counts over the run", () => {
    const series = { "g/a#nan": { max: [0, 2, F("NaN")] }, "g/a#inf": { max: [1] }, "g/a#ninf": { max: [] } };
    assert.equal(everNonfinite("g/a", series), 3);
  });

  test("0 with no statistics series", () => {
    assert.equal(everNonfinite("g/a", {}), 0);
  });
});

describe("analyse", () => {
  const params = ["a", "b", "c", "d", "e"].map(param);
  const summary = {
    "gradients/a": { norm: 1, count: 10, nan: 0, inf: 0, ninf: 0 },
    "gradients/b": { norm: 1.2, count: 10 },
    "gradients/c": { norm: 500, count: 10 },
    "gradients/d": { norm: F("NaN"), count: 10, nan: 10 },
    // e: nothing logged
    "parameters/a": { norm: 4 },
    "parameters/b": { norm: 0 },
    "parameters/d": { norm: 2 },
  };
  const rows = byName(analyse(params, summary, { "gradients/b": 3 }, { "gradients/a": 0.05 }));

  test("norms; a gradient with no finite value has norm NaN, one never logged null", () => {
    assert.equal(rows.a.norm, 1);
    assert.ok(Number.isNaN(rows.d.norm));
    assert.equal(rows.e.norm, null);
    assert.equal(rows.e.count, null);
  });

  test("gradient / weight ratio; a zero weight norm gives ∞; no weights, no ratio", () => {
    assert.equal(rows.a.wnorm, 4);
    assert.equal(rows.a.ratio, 0.25);
    assert.equal(rows.b.ratio, Infinity);
    assert.equal(rows.c.wnorm, null);
    assert.equal(rows.c.ratio, null);
    assert.ok(Number.isNaN(rows.d.ratio));
  });

  test("the learning rate scales the ratio into an update / weight ratio", () => {
    const [a] = analyse([param("a")], summary, {}, {}, 0.1);
    assert.ok(Math.abs(a.ratio - 0.025) < 1e-15);
  });

  test("non-finite: now (NaN norm, NaN counts) or ever before", () => {
    assert.deepEqual(rows.d.flags, ["nonfinite"]);
    assert.equal(rows.d.nonfinite, 10);
    assert.deepEqual(rows.b.flags, ["nonfinite"]);
    assert.equal(rows.b.everNonfinite, 3);
    assert.equal(rows.b.nonfinite, 0);
  });

  test("exploding: far above the median of all parameters, or above its own past", () => {
    assert.ok(500 >= EXPLODING_VS_MEDIAN * 1.2);
    assert.deepEqual(rows.c.flags, ["exploding"]);
    assert.deepEqual(rows.a.flags, ["exploding"]); // 1 >= 10 x its own median 0.05
  });

  test("the worst flag is the severity; a missing value is not flagged", () => {
    assert.equal(rows.d.severity, 3);
    assert.equal(rows.c.severity, 2);
    assert.equal(rows.e.severity, 0);
    assert.deepEqual(rows.e.flags, []);
  });

  test("vanishing: tiny in absolute terms, or next to the median", () => {
    const ps = ["x", "y", "z", "w"].map(param);
    const s = { "gradients/x": { norm: VANISHING_ABS / 2 }, "gradients/y": { norm: 1 }, "gradients/z": { norm: 1 }, "gradients/w": { norm: 1e-5 } };
    const r = byName(analyse(ps, s, {}, {}));
    assert.deepEqual(r.x.flags, ["vanishing"]);
    assert.deepEqual(r.w.flags, ["vanishing"]); // above 1e-7, but <= 1e-4 x the median (about 0.5)
    assert.deepEqual(r.y.flags, []);
  });

  test("two parameters are too few to call one exploding against the median", () => {
    const r = byName(analyse([param("p"), param("q")], { "gradients/p": { norm: 1 }, "gradients/q": { norm: 1e6 } }, {}, {}));
    assert.deepEqual(r.q.flags, []);
  });

  test("no parameters, no rows", () => {
    assert.deepEqual(analyse([], {}, {}, {}), []);
  });
});

describe("sortRows", () => {
  const row = (name, norm, severity = 0) => ({ key: `gradients/${name}`, name, norm, wnorm: null, ratio: null, nonfinite: 0, everNonfinite: 0, count: 1, flags: [], severity });
  const rows = [row("layer2", 1), row("layer10", NaN, 3), row("a", 500, 2), row("b", null), row("c", 1.2, 3)];
  const names = (rs) => rs.map((r) => r.name);

  test("by a number: NaN beyond the largest, missing last in both directions", () => {
    assert.deepEqual(names(sortRows(rows, "norm", true)), ["layer10", "a", "c", "layer2", "b"]);
    assert.deepEqual(names(sortRows(rows, "norm", false)), ["layer2", "c", "a", "layer10", "b"]);
  });

  test("by severity, ties to the larger norm", () => {
    assert.deepEqual(names(sortRows(rows, "severity", true)), ["c", "layer10", "a", "layer2", "b"]);
  });

  test("by name, in natural order", () => {
    assert.deepEqual(names(sortRows(rows, "name", false)), ["a", "b", "c", "layer2", "layer10"]);
    assert.deepEqual(names(sortRows(rows, "name", true)), ["layer10", "layer2", "c", "b", "a"]);
  });

  test("leaves the rows it was given as they were", () => {
    sortRows(rows, "norm", true);
    assert.equal(rows[0].name, "layer2");
  });
});
