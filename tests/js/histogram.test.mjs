// Histograms on one value grid (the gradient explorer's heatmap) and their percentiles.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { columnIndices, densityColumn, edgeRange, nearestIndex, percentiles, resample } from "../../gradexp/server/static/assets/js/lib/histogram.js";

const F = (value) => ({ _type: "float", value });
const sum = (a) => a.reduce((x, y) => x + y, 0);

function closeAll(actual, expected, eps = 1e-12) {
  assert.equal(actual.length, expected.length);
  actual.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) <= eps, `[${i}] ${v} != ${expected[i]}`));
}

describe("resample", () => {
  test("shares each bin's count among the cells it covers", () => {
    closeAll([...resample([0, 1, 2], [4, 8], 0, 2, 4)], [2, 2, 4, 4]);
  });

  test("keeps the total when the histogram lies inside [lo, hi]", () => {
    const edges = [-0.7, -0.31, 0.02, 0.4, 0.93];
    const counts = [3, 17, 11, 5];
    const out = resample(edges, counts, -1, 1, 64);
    assert.ok(Math.abs(sum([...out]) - 36) < 1e-9);
  });

  test("drops the mass outside [lo, hi]", () => {
    closeAll([...resample([-1, 1], [10], 0, 1, 2)], [2.5, 2.5]);
    closeAll([...resample([5, 6], [10], 0, 1, 2)], [0, 0]);
  });

  test("a zero-width bin (all values equal) goes whole to its cell, clamped to the grid", () => {
    closeAll([...resample([3, 3], [5], 0, 10, 10)], [0, 0, 0, 5, 0, 0, 0, 0, 0, 0]);
    assert.equal(resample([20, 20], [5], 0, 10, 10)[9], 5);
    assert.equal(resample([-20, -20], [5], 0, 10, 10)[0], 5);
  });

  test("bins with NaN edges or no count are skipped", () => {
    closeAll([...resample([0, NaN, 2], [4, 4], 0, 2, 2)], [0, 0]);
    closeAll([...resample([0, 1, 2], [0, 0], 0, 2, 2)], [0, 0]);
  });

  test("an empty or inverted grid range gives zeros", () => {
    closeAll([...resample([0, 1], [4], 1, 1, 3)], [0, 0, 0]);
    closeAll([...resample([0, 1], [4], 2, 1, 3)], [0, 0, 0]);
    closeAll([...resample([0, 1], [4], NaN, 1, 3)], [0, 0, 0]);
  });

  test("an empty histogram gives zeros", () => {
    closeAll([...resample([], [], 0, 1, 4)], [0, 0, 0, 0]);
  });

  test("a given buffer is cleared and reused", () => {
    const buf = new Float64Array([9, 9]);
    assert.equal(resample([0, 1], [2], 0, 1, 2, buf), buf);
    closeAll([...buf], [1, 1]);
  });

  test("huge and tiny magnitudes", () => {
    closeAll([...resample([0, 1e300], [8], 0, 1e300, 2)], [4, 4]);
    closeAll([...resample([0, 1e-300], [8], 0, 1e-300, 4)], [2, 2, 2, 2]);
  });
});

describe("percentiles", () => {
  test("interpolate linearly inside a bin", () => {
    assert.deepEqual(percentiles([0, 10], [4], [0, 0.25, 0.5, 1]), [0, 2.5, 5, 10]);
  });

  test("a histogram of one element: every percentile is within its bin", () => {
    assert.deepEqual(percentiles([0, 1, 2], [0, 1], [0, 0.5, 1]), [1, 1.5, 2]);
    assert.deepEqual(percentiles([2, 2], [1], [0, 0.5, 1]), [2, 2, 2]);
  });

  test("bins with no values are stepped over", () => {
    assert.deepEqual(percentiles([0, 1, 2, 3], [2, 0, 2], [0.25, 0.5, 0.75]), [0.5, 1, 2.5]);
  });

  test("an empty histogram has NaN percentiles", () => {
    const none = percentiles([0, 1, 2], [0, 0], [0.05, 0.5]);
    assert.equal(none.length, 2);
    assert.ok(none.every(Number.isNaN));
    assert.ok(percentiles([], [], [0.5]).every(Number.isNaN));
  });

  test("rise with q", () => {
    const edges = [-3, -1, -0.2, 0, 0.5, 4];
    const counts = [1, 7, 20, 9, 2];
    const qs = [0, 0.05, 0.25, 0.5, 0.75, 0.95, 1];
    const p = percentiles(edges, counts, qs);
    for (let i = 1; i < p.length; i++) assert.ok(p[i] >= p[i - 1], `${p}`);
    assert.equal(p[0], -3);
    assert.equal(p[p.length - 1], 4);
  });
});

describe("edgeRange", () => {
  test("from the lowest first edge to the highest last edge", () => {
    assert.deepEqual(edgeRange([[0, 1, 2], null, [], [-3, 5]]), { lo: -3, hi: 5 });
  });

  test("non-finite edges (typed or not) are ignored", () => {
    assert.deepEqual(edgeRange([[F("-Infinity"), 0, 1], [-2, F("NaN")], [NaN, 0.5]]), { lo: -2, hi: 1 });
  });

  test("no histogram, or none with finite edges: -1..1", () => {
    assert.deepEqual(edgeRange([]), { lo: -1, hi: 1 });
    assert.deepEqual(edgeRange([null, [], [F("NaN"), F("NaN")]]), { lo: -1, hi: 1 });
  });

  test("a single value gets a unit span around it", () => {
    assert.deepEqual(edgeRange([[2, 2]]), { lo: 1.5, hi: 2.5 });
  });
});

describe("densityColumn", () => {
  test("top cell first, square root of each cell's share of the fullest", () => {
    closeAll([...densityColumn([0, 1, 4])], [1, 0.5, 0]);
  });

  test("an empty column is -1 throughout", () => {
    closeAll([...densityColumn(new Float64Array(3))], [-1, -1, -1]);
  });

  test("one cell", () => {
    closeAll([...densityColumn([7])], [1]);
  });
});

describe("nearestIndex", () => {
  test("the nearest step, the first one on a tie", () => {
    assert.equal(nearestIndex([0, 10, 20], 5), 0);
    assert.equal(nearestIndex([0, 10, 20], 6), 1);
    assert.equal(nearestIndex([0, 10, 20], 15), 1);
    assert.equal(nearestIndex([0, 10, 20], 1e9), 2);
    assert.equal(nearestIndex([0, 10, 20], -1e9), 0);
  });

  test("one step, and no step at all, give 0", () => {
    assert.equal(nearestIndex([42], 0), 0);
    assert.equal(nearestIndex([], 3), 0);
  });
});

describe("columnIndices", () => {
  test("each pixel column shows the histogram nearest its middle", () => {
    assert.deepEqual([...columnIndices([0, 10], 4)], [0, 0, 1, 1]);
    assert.deepEqual([...columnIndices([0, 10], 2)], [0, 1]);
    assert.deepEqual([...columnIndices([0, 1, 2, 3, 100], 4)], [3, 3, 4, 4]);
  });

  test("one step fills every column; no step gives zeros", () => {
    assert.deepEqual([...columnIndices([7], 3)], [0, 0, 0]);
    assert.deepEqual([...columnIndices([], 2)], [0, 0]);
  });

  test("indices never go back and stay in range", () => {
    const steps = [0, 3, 4, 9, 50, 51, 52, 200, 1000];
    const idx = columnIndices(steps, 333);
    for (let c = 0; c < idx.length; c++) {
      assert.ok(idx[c] >= 0 && idx[c] < steps.length);
      if (c) assert.ok(idx[c] >= idx[c - 1]);
    }
    assert.ok(idx[0] <= 1); // the first column's middle is 1.5 steps in: as near step 3 as step 0
    assert.equal(idx[idx.length - 1], steps.length - 1);
  });
});
