// What a chart's axes span: padding, empty data, single values, log axes.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { xDomain, yDomain, yExtent } from "../../gradexp/server/static/assets/js/lib/axes.js";

function close(actual, expected, rel = 1e-9) {
  assert.ok(Math.abs(actual - expected) <= rel * Math.max(1, Math.abs(expected)), `${actual} != ${expected}`);
}

describe("xDomain", () => {
  test("no data: 0..1", () => {
    assert.deepEqual(xDomain(Infinity, -Infinity, true), { x0: 0, x1: 1 });
    assert.deepEqual(xDomain(NaN, NaN, false), { x0: 0, x1: 1 });
  });

  test("a step axis starting near 0 starts at 0", () => {
    assert.deepEqual(xDomain(4, 1000, true), { x0: 0, x1: 1000 });
    assert.deepEqual(xDomain(4, 1000, false), { x0: 4, x1: 1000 });
  });

  test("a step axis starting far from 0 keeps its start", () => {
    assert.deepEqual(xDomain(500, 1000, true), { x0: 500, x1: 1000 });
  });

  test("one point gets a span around it", () => {
    assert.deepEqual(xDomain(7, 7, true), { x0: 6, x1: 8 });
    assert.deepEqual(xDomain(0, 0, true), { x0: -1, x1: 1 });
  });
});

describe("yDomain", () => {
  test("5 % padding on each side", () => {
    const { y0, y1 } = yDomain(0, 10, false);
    close(y0, -0.5);
    close(y1, 10.5);
  });

  test("no data: 0..1, or 0.1..10 on a log axis (padded)", () => {
    const lin = yDomain(Infinity, -Infinity, false);
    close(lin.y0, -0.05);
    close(lin.y1, 1.05);
    const log = yDomain(Infinity, -Infinity, true);
    close(Math.log10(log.y0), -1.1);
    close(Math.log10(log.y1), 1.1);
  });

  test("a single value gets 5 % of itself each side, or 1 around zero", () => {
    assert.deepEqual(yDomain(20, 20, false), { y0: 19, y1: 21 });
    assert.deepEqual(yDomain(-20, -20, false), { y0: -21, y1: -19 });
    assert.deepEqual(yDomain(0, 0, false), { y0: -1, y1: 1 });
  });

  test("a range narrower than floating-point noise counts as a single value", () => {
    const { y0, y1 } = yDomain(1, 1 + 1e-15, false);
    close(y0, 0.95);
    close(y1, 1.05 + 1e-15);
  });

  test("negative ranges pad outward", () => {
    const { y0, y1 } = yDomain(-10, -2, false);
    close(y0, -10.4);
    close(y1, -1.6);
  });

  test("log axis: padding in decades, strictly positive", () => {
    const { y0, y1 } = yDomain(1e-3, 1e3, true);
    close(Math.log10(y0), -3.3);
    close(Math.log10(y1), 3.3);
  });

  test("log axis: a single value spans a decade around it", () => {
    const { y0, y1 } = yDomain(100, 100, true);
    close(Math.log10(y0), 1.45);
    close(Math.log10(y1), 2.55);
  });

  test("huge and tiny magnitudes stay finite", () => {
    const big = yDomain(1e300, 1.5e300, false);
    assert.ok(Number.isFinite(big.y0) && Number.isFinite(big.y1) && big.y1 > big.y0);
    const tiny = yDomain(1e-300, 1e-300, true);
    assert.ok(tiny.y0 > 0 && tiny.y1 > tiny.y0);
  });
});

describe("yExtent", () => {
  const line = (value, { min = value, max = value, ys = value, xs = value.map((_, i) => i) } = {}) => ({
    s: { n: value.length, value, min, max },
    xs,
    ys,
  });

  test("nothing drawn: an empty extent", () => {
    assert.deepEqual(yExtent([], 0, 10, true, false), { y0: Infinity, y1: -Infinity });
    assert.deepEqual(yExtent([line([])], 0, 10, true, false), { y0: Infinity, y1: -Infinity });
  });

  test("NaN and ±inf are not drawn, so they do not stretch the axis", () => {
    const l = line([NaN, 3, Infinity, -Infinity, 1]);
    assert.deepEqual(yExtent([l], 0, 10, false, false), { y0: 1, y1: 3 });
  });

  test("a log axis ignores zero and negative values", () => {
    const l = line([-5, 0, 0.01, 100]);
    assert.deepEqual(yExtent([l], 0, 10, false, true), { y0: 0.01, y1: 100 });
    assert.deepEqual(yExtent([line([-5, 0])], 0, 10, false, true), { y0: Infinity, y1: -Infinity });
  });

  test("bands count only when drawn", () => {
    const l = line([1, 2], { min: [0, 1], max: [5, 2] });
    assert.deepEqual(yExtent([l], 0, 10, true, false), { y0: 0, y1: 5 });
    assert.deepEqual(yExtent([l], 0, 10, false, false), { y0: 1, y1: 2 });
  });

  test("only points inside [x0, x1] count", () => {
    const l = line([100, 1, 2, -100]);
    assert.deepEqual(yExtent([l], 1, 2, false, false), { y0: 1, y1: 2 });
  });

  test("the raw values under a smoothed line count too", () => {
    const l = line([0, 10], { ys: [4, 6] });
    assert.deepEqual(yExtent([l], 0, 1, false, false), { y0: 0, y1: 10 });
  });

  test("several lines share one extent", () => {
    assert.deepEqual(yExtent([line([1, 2]), line([-3, 0])], 0, 1, false, false), { y0: -3, y1: 2 });
  });
});
