// A chart's axes: ticks (nice steps, log axes, time axes) and spans (padding, empty data,
// single values, log axes).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { TIME_STEPS, logTicks, niceStep, niceTicks, timeTicks, xDomain, yDomain, yExtent } from "../../gradexp/server/static/assets/js/lib/axes.js";

/** The ticks with -0 as 0 (the first tick at zero can be -0; every label writes it "0"). */
const plain = (ticks) => ticks.map((t) => t + 0);

/** Equal up to floating-point noise relative to the magnitude. */
function close(actual, expected, rel = 1e-9) {
  assert.ok(Math.abs(actual - expected) <= rel * Math.max(1, Math.abs(expected)), `${actual} != ${expected}`);
}

describe("niceStep", () => {
  test("is 1, 2 or 5 times a power of ten", () => {
    assert.equal(niceStep(10, 10), 1);
    assert.equal(niceStep(10, 5), 2);
    assert.equal(niceStep(10, 2), 5);
    assert.equal(niceStep(10, 1), 10);
    assert.equal(niceStep(7, 1), 10);
    assert.equal(niceStep(100, 5), 20);
  });

  test("an empty, negative or NaN range gets step 1", () => {
    assert.equal(niceStep(0, 5), 1);
    assert.equal(niceStep(-3, 5), 1);
    assert.equal(niceStep(NaN, 5), 1);
  });

  test("huge and tiny magnitudes keep their scale", () => {
    close(niceStep(1e15, 5), 2e14);
    close(niceStep(3e-12, 3), 1e-12);
    close(niceStep(1e300, 10), 1e299);
  });

  test("a target of 0 counts as 1", () => {
    assert.equal(niceStep(10, 0), 10);
  });
});

describe("niceTicks", () => {
  test("covers [lo, hi] with multiples of the step", () => {
    const { ticks, step } = niceTicks(0.13, 0.97, 5);
    assert.equal(step, 0.2);
    assert.equal(ticks.length, 4);
    for (const [i, t] of ticks.entries()) close(t, 0.2 * (i + 1));
  });

  test("includes both ends when they fall on a tick, despite rounding", () => {
    const ticks = plain(niceTicks(0, 1, 10).ticks);
    assert.equal(ticks.length, 11);
    assert.equal(ticks[0], 0);
    close(ticks[10], 1);
  });

  test("negative ranges and ranges across zero", () => {
    assert.deepEqual(niceTicks(-10, -2, 4).ticks, [-10, -8, -6, -4, -2]);
    assert.deepEqual(plain(niceTicks(-1, 1, 2).ticks), [-1, 0, 1]);
  });

  test("integer axes never step below 1", () => {
    const { ticks, step } = niceTicks(0, 3, 10, true);
    assert.equal(step, 1);
    assert.deepEqual(plain(ticks), [0, 1, 2, 3]);
  });

  test("a single value gets one tick when it sits on a multiple", () => {
    assert.deepEqual(niceTicks(5, 5, 5).ticks, [5]);
  });

  test("never more than 100 ticks", () => {
    assert.equal(niceTicks(0, 1e6, 1e9).ticks.length, 100);
  });

  test("an empty domain (lo > hi) has no ticks", () => {
    assert.deepEqual(niceTicks(1, 0, 5).ticks, []);
  });
});

describe("logTicks", () => {
  test("decades over a wide range", () => {
    const ticks = logTicks(1e-3, 1e3, 10);
    assert.equal(ticks.length, 7);
    for (const [i, t] of ticks.entries()) close(t, 10 ** (i - 3));
  });

  test("thins decades to about the target count", () => {
    const ticks = logTicks(1, 1e12, 4);
    assert.deepEqual(ticks.map((t) => Math.round(Math.log10(t))), [0, 3, 6, 9, 12]);
  });

  test("1-2-5 within two decades", () => {
    assert.deepEqual(logTicks(1, 100, 10), [1, 2, 5, 10, 20, 50, 100]);
  });

  test("falls back to linear ticks (all positive) when fewer than two would show", () => {
    const ticks = logTicks(2.1, 4.9, 5);
    assert.ok(ticks.length >= 2);
    assert.ok(ticks.every((t) => t > 0 && t >= 2.1 && t <= 4.9));
  });

  test("the linear fallback never hands a log axis a tick <= 0", () => {
    assert.ok(logTicks(1e-9, 1.5e-9, 5).every((t) => t > 0));
  });
});

describe("timeTicks", () => {
  test("takes the first human step that fits the target", () => {
    const { step, ticks } = timeTicks(0, 600, 5, false);
    assert.equal(step, 120);
    assert.deepEqual(plain(ticks), [0, 120, 240, 360, 480, 600]);
  });

  test("relative ticks sit on multiples of the step", () => {
    const { ticks, step } = timeTicks(7, 100, 4, false);
    assert.equal(step, 30);
    assert.deepEqual(ticks, [30, 60, 90]);
  });

  test("sub-second steps for short spans", () => {
    assert.equal(timeTicks(0, 0.01, 5, false).step, 0.002);
  });

  test("past a week, steps are nice multiples of it", () => {
    const span = 400 * 86400;
    const { step } = timeTicks(0, span, 4, false);
    assert.ok(step > TIME_STEPS[TIME_STEPS.length - 1]);
    assert.equal(step, niceStep(span, 4));
  });

  test("wall-clock ticks fall on local hours", () => {
    const lo = new Date(2026, 0, 15, 9, 17, 0).getTime() / 1000;
    const { ticks, step } = timeTicks(lo, lo + 6 * 3600, 6, true);
    assert.equal(step, 3600);
    for (const t of ticks) {
      const d = new Date(t * 1000);
      assert.equal(d.getMinutes(), 0);
      assert.equal(d.getSeconds(), 0);
    }
    assert.equal(new Date(ticks[0] * 1000).getHours(), 10);
  });
});

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
