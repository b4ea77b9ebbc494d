// A chart's series: decoding the history API, live appends, compaction keeping min/max,
// nearest-point search, EMA smoothing.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { Series, emaSmooth, lowerBound, maxIgnoringNaN, minIgnoringNaN } from "../../gradexp/server/static/assets/js/lib/series.js";

function close(actual, expected, rel = 1e-12) {
  assert.ok(Math.abs(actual - expected) <= rel * Math.max(1, Math.abs(expected)), `${actual} != ${expected}`);
}

const F = (value) => ({ _type: "float", value });
const arr = (a, n) => [...a.subarray(0, n)];

describe("Series.setFromApi", () => {
  test("decodes the protocol's NaN and ±inf, and booleans", () => {
    const s = new Series("r", "run", "#000").setFromApi({
      step: [0, 1, 2, 3],
      time: [10, 11, 12, 13],
      value: [1.5, F("NaN"), F("Infinity"), true],
      min: [1, F("-Infinity"), 0, false],
      max: [2, F("NaN"), F("Infinity"), 1],
    });
    assert.equal(s.n, 4);
    assert.deepEqual(arr(s.value, 4), [1.5, NaN, Infinity, 1]);
    assert.deepEqual(arr(s.min, 4), [1, -Infinity, 0, 0]);
    assert.deepEqual(arr(s.max, 4), [2, NaN, Infinity, 1]);
    assert.equal(s.lastStep, 3);
  });

  test("a string or an unknown typed value is NaN, not 0", () => {
    const s = new Series("r", "run", "#000").setFromApi({ step: [0, 1], time: [0, 0], value: ["x", F("bogus")], min: [null, 0], max: [0, 0] });
    assert.ok(Number.isNaN(s.value[0]) && Number.isNaN(s.value[1]) && Number.isNaN(s.min[0]));
  });

  test("an empty or missing series is empty", () => {
    const s = new Series("r", "run", "#000");
    assert.equal(s.setFromApi(null).n, 0);
    assert.equal(s.setFromApi({ step: [], time: [], value: [], min: [], max: [] }).n, 0);
    assert.equal(s.lastStep, -Infinity);
  });

  test("grows past its capacity, and bumps its version", () => {
    const n = 1000;
    const steps = Array.from({ length: n }, (_, i) => i);
    const s = new Series("r", "run", "#000", 4);
    const v0 = s.version;
    s.setFromApi({ step: steps, time: steps, value: steps, min: steps, max: steps });
    assert.equal(s.n, n);
    assert.equal(s.value[n - 1], n - 1);
    assert.ok(s.version > v0);
  });
});

describe("Series.append", () => {
  test("adds points after the last step only", () => {
    const s = new Series("r", "run", "#000", 2);
    assert.equal(s.append(1, 100, 0.5), true);
    assert.equal(s.append(1, 101, 0.7), false);
    assert.equal(s.append(0, 101, 0.7), false);
    assert.equal(s.append(2, 102, NaN), true);
    assert.equal(s.append(3, 103, 9), true); // past the capacity of 2
    assert.equal(s.n, 3);
    assert.deepEqual(arr(s.step, 3), [1, 2, 3]);
    assert.deepEqual(arr(s.min, 3), [0.5, NaN, 9]);
  });
});

describe("Series.compact", () => {
  const live = (values) => {
    const s = new Series("r", "run", "#000");
    values.forEach((v, i) => s.append(i, 1000 + i, v));
    return s;
  };

  test("halves the points, keeping each pair's min and max and the later value", () => {
    const s = live([1, 9, -4, 2]);
    s.compact();
    assert.equal(s.n, 2);
    assert.deepEqual(arr(s.step, 2), [1, 3]);
    assert.deepEqual(arr(s.time, 2), [1001, 1003]);
    assert.deepEqual(arr(s.value, 2), [9, 2]);
    assert.deepEqual(arr(s.min, 2), [1, -4]);
    assert.deepEqual(arr(s.max, 2), [9, 2]);
  });

  test("a spike survives repeated compaction", () => {
    const values = Array.from({ length: 64 }, (_, i) => (i === 37 ? 1e6 : i === 50 ? -1e6 : 0));
    const s = live(values);
    for (let k = 0; k < 6; k++) s.compact();
    assert.equal(s.n, 1);
    assert.equal(s.max[0], 1e6);
    assert.equal(s.min[0], -1e6);
    assert.equal(s.step[0], 63);
  });

  test("an odd count keeps the last point alone", () => {
    const s = live([1, 2, 3]);
    s.compact();
    assert.equal(s.n, 2);
    assert.deepEqual(arr(s.value, 2), [2, 3]);
    assert.deepEqual(arr(s.min, 2), [1, 3]);
  });

  test("NaN does not hide the other point's min and max", () => {
    const s = live([NaN, 5, NaN, NaN]);
    s.compact();
    assert.equal(s.min[0], 5);
    assert.equal(s.max[0], 5);
    assert.ok(Number.isNaN(s.min[1]) && Number.isNaN(s.max[1]));
  });

  test("one point and no points stay as they are", () => {
    const one = live([7]);
    one.compact();
    assert.equal(one.n, 1);
    assert.equal(one.value[0], 7);
    const none = live([]);
    none.compact();
    assert.equal(none.n, 0);
  });
});

describe("Series.nearest and lowerBound", () => {
  const s = new Series("r", "run", "#000").setFromApi({ step: [0, 10, 20], time: [0, 0, 0], value: [0, 0, 0], min: [0, 0, 0], max: [0, 0, 0] });

  test("the nearest point, the earlier one on a tie", () => {
    assert.equal(s.nearest(s.step, -5), 0);
    assert.equal(s.nearest(s.step, 4), 0);
    assert.equal(s.nearest(s.step, 5), 0);
    assert.equal(s.nearest(s.step, 6), 1);
    assert.equal(s.nearest(s.step, 19), 2);
    assert.equal(s.nearest(s.step, 1e9), 2);
  });

  test("no point: -1", () => {
    const empty = new Series("e", "empty", "#000");
    assert.equal(empty.nearest(empty.step, 3), -1);
  });

  test("lowerBound finds the first x >= the target within n", () => {
    const xs = [1, 2, 2, 5, 100];
    assert.equal(lowerBound(xs, 5, 0), 0);
    assert.equal(lowerBound(xs, 5, 2), 1);
    assert.equal(lowerBound(xs, 5, 3), 3);
    assert.equal(lowerBound(xs, 5, 101), 5);
    assert.equal(lowerBound(xs, 3, 50), 3);
    assert.equal(lowerBound([], 0, 1), 0);
  });
});

describe("min/maxIgnoringNaN", () => {
  test("NaN only when both are", () => {
    assert.equal(minIgnoringNaN(NaN, 3), 3);
    assert.equal(minIgnoringNaN(3, NaN), 3);
    assert.equal(maxIgnoringNaN(NaN, -Infinity), -Infinity);
    assert.ok(Number.isNaN(minIgnoringNaN(NaN, NaN)));
    assert.equal(minIgnoringNaN(-1, 2), -1);
    assert.equal(maxIgnoringNaN(-1, 2), 2);
  });
});

describe("emaSmooth", () => {
  test("the first point is its own value (debiased, no pull toward 0)", () => {
    assert.equal(emaSmooth([5, 5, 5], 3, 0.9)[0], 5);
  });

  test("a constant series stays constant at every point, both ends included", () => {
    const out = emaSmooth(new Float64Array(50).fill(-3.5), 50, 0.99);
    for (const v of out) close(v, -3.5);
  });

  test("a step is followed gradually, and the end lags the last value", () => {
    const values = [0, 0, 0, 0, 10, 10, 10, 10];
    const out = emaSmooth(values, values.length, 0.5);
    for (let i = 0; i < 4; i++) assert.equal(out[i], 0);
    for (let i = 5; i < values.length; i++) assert.ok(out[i] > out[i - 1] && out[i] < 10);
  });

  test("debiased weights: the second point of 0.6 smoothing", () => {
    const out = emaSmooth([1, 2], 2, 0.6);
    // (0.6 * 0.4 * 1 + 0.4 * 2) / (0.6 * 0.4 + 0.4)
    close(out[1], (0.24 + 0.8) / 0.64);
  });

  test("no smoothing (beta 0) is the identity", () => {
    assert.deepEqual([...emaSmooth([3, -1, 7], 3, 0)], [3, -1, 7]);
  });

  test("NaN and ±inf pass through and leave the average as it was", () => {
    const out = emaSmooth([1, NaN, Infinity, -Infinity, 1], 5, 0.5);
    assert.ok(Number.isNaN(out[1]));
    assert.equal(out[2], Infinity);
    assert.equal(out[3], -Infinity);
    close(out[4], 1);
  });

  test("a series starting with NaN starts its average at the first finite value", () => {
    const out = emaSmooth([NaN, 4, 4], 3, 0.9);
    assert.ok(Number.isNaN(out[0]));
    close(out[1], 4);
  });

  test("only the first n values are smoothed; an empty series gives an empty result", () => {
    assert.equal(emaSmooth([1, 2, 3], 2, 0.5).length, 2);
    assert.equal(emaSmooth([], 0, 0.5).length, 0);
  });

  test("an output buffer long enough is reused, a short one is not", () => {
    const buf = new Float64Array(4);
    assert.equal(emaSmooth([1, 2], 2, 0.5, buf), buf);
    assert.notEqual(emaSmooth([1, 2, 3], 3, 0.5, new Float64Array(2)).length, 2);
  });
});
