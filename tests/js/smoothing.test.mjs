// The chart's exponential moving average.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { emaSmooth } from "../../gradexp/server/static/assets/js/lib/series.js";

function close(actual, expected, rel = 1e-12) {
  assert.ok(Math.abs(actual - expected) <= rel * Math.max(1, Math.abs(expected)), `${actual} != ${expected}`);
}

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
