// Readable numbers, durations, times and sizes.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { fmtAgo, fmtBytes, fmtClock, fmtCompact, fmtDateTime, fmtDuration, fmtNum, fmtRelTick, fmtShape, fmtTick, fmtValue } from "../../gradexp/server/static/assets/js/lib/format.js";

const F = (value) => ({ _type: "float", value });
/** Unix seconds of a local time (so the tests pass in any time zone). */
const local = (...parts) => new Date(...parts).getTime() / 1000;

describe("fmtNum", () => {
  test("NaN, ±inf and zero", () => {
    assert.equal(fmtNum(NaN), "NaN");
    assert.equal(fmtNum(Infinity), "∞");
    assert.equal(fmtNum(-Infinity), "−∞");
    assert.equal(fmtNum(0), "0");
    assert.equal(fmtNum(-0), "0");
  });

  test("integers exact, with separators, below a million", () => {
    assert.equal(fmtNum(7), "7");
    assert.equal(fmtNum(1234), "1,234");
    assert.equal(fmtNum(-999999), "-999,999");
  });

  test("SI suffixes from a million", () => {
    assert.equal(fmtNum(1e6), "1M");
    assert.equal(fmtNum(1234567), "1.235M");
    assert.equal(fmtNum(-2.5e9), "-2.5G");
    assert.equal(fmtNum(2.5e15), "2.5P");
  });

  test("an exponent for huge and tiny magnitudes", () => {
    assert.equal(fmtNum(1e18), "1e18");
    assert.equal(fmtNum(-3.2e200), "-3.2e200");
    assert.equal(fmtNum(1.234e-5), "1.234e-5");
    assert.equal(fmtNum(5e-324), "4.941e-324");
  });

  test("about four significant digits, trailing zeros trimmed", () => {
    assert.equal(fmtNum(0.8312), "0.8312");
    assert.equal(fmtNum(0.5), "0.5");
    assert.equal(fmtNum(3.14159), "3.142");
    assert.equal(fmtNum(-0.0001), "-0.0001");
    assert.equal(fmtNum(3.14159, 6), "3.14159");
  });

  test("thousands with separators, never an exponent", () => {
    assert.equal(fmtNum(5253.4), "5,253");
    assert.equal(fmtNum(12345.6), "12,346");
  });

  test("anything that is not a number is written as a value", () => {
    assert.equal(fmtNum(null), "—");
    assert.equal(fmtNum(undefined), "—");
    assert.equal(fmtNum("n/a"), "n/a");
    assert.equal(fmtNum(F("NaN")), "NaN");
  });
});

describe("fmtCompact", () => {
  test("at most about 7 characters", () => {
    assert.equal(fmtCompact(12345), "12345");
    assert.equal(fmtCompact(123456), "123k");
    assert.equal(fmtCompact(1440.5), "1.44k");
    assert.equal(fmtCompact(4.5e6), "4.5M");
    assert.equal(fmtCompact(0.00123), "0.00123");
    assert.equal(fmtCompact(-1.23e-5), "-1.23e-5");
    assert.equal(fmtCompact(0.5), "0.5");
    assert.equal(fmtCompact(1e18), "1e18");
    for (const x of [123456.789, -987654321, 0.000123456, 3.14159265, -0.004567]) assert.ok(fmtCompact(x).length <= 8, fmtCompact(x));
  });

  test("NaN, ±inf, zero and non-numbers", () => {
    assert.equal(fmtCompact(NaN), "NaN");
    assert.equal(fmtCompact(-Infinity), "−∞");
    assert.equal(fmtCompact(0), "0");
    assert.equal(fmtCompact(null), "—");
  });
});

describe("fmtTick", () => {
  test("as many decimals as the step needs", () => {
    assert.equal(fmtTick(0, 1), "0");
    assert.equal(fmtTick(0.2, 0.2), "0.2");
    assert.equal(fmtTick(0.05, 0.01), "0.05");
    assert.equal(fmtTick(1500, 500), "1500");
    assert.equal(fmtTick(-0.5, 0.5), "-0.5");
    assert.equal(fmtTick(3, 1), "3");
  });

  test("SI suffixes from 10,000", () => {
    assert.equal(fmtTick(25000, 5000), "25k");
    assert.equal(fmtTick(2e6, 1e6), "2M");
    assert.equal(fmtTick(1.5e6, 5e5), "1.5M");
  });

  test("an exponent for tiny steps and huge values", () => {
    assert.equal(fmtTick(1e-5, 1e-5), "1e-5");
    assert.equal(fmtTick(3e-5, 1e-5), "3e-5");
    assert.equal(fmtTick(2e20, 1e20), "2e20");
  });
});

describe("fmtDuration", () => {
  test("from fractions of a second to days", () => {
    assert.equal(fmtDuration(0.42), "0.42s");
    assert.equal(fmtDuration(4.2), "4.2s");
    assert.equal(fmtDuration(42), "42s");
    assert.equal(fmtDuration(185), "3m 05s");
    assert.equal(fmtDuration(59.6), "1m 00s");
    assert.equal(fmtDuration(2 * 3600 + 14 * 60), "2h 14m");
    assert.equal(fmtDuration(3 * 86400 + 4 * 3600), "3d 4h");
  });

  test("unknown durations are a dash; negative ones (clock skew) read as 0", () => {
    assert.equal(fmtDuration(null), "—");
    assert.equal(fmtDuration(undefined), "—");
    assert.equal(fmtDuration(NaN), "—");
    assert.equal(fmtDuration(Infinity), "—");
    assert.equal(fmtDuration(-5), "0.00s");
  });
});

describe("times", () => {
  test("fmtDateTime: local date and minute", () => {
    assert.equal(fmtDateTime(local(2026, 10, 26, 14, 3, 59)), "2026-11-26 14:03");
    assert.equal(fmtDateTime(null), "—");
    assert.equal(fmtDateTime(NaN), "—");
  });

  test("fmtAgo: relative to now, then the date", () => {
    const now = local(2026, 5, 1, 12, 0, 0);
    assert.equal(fmtAgo(now - 10, now), "just now");
    assert.equal(fmtAgo(now - 300, now), "5 min ago");
    assert.equal(fmtAgo(now - 3 * 3600, now), "3 h ago");
    assert.equal(fmtAgo(now - 2 * 86400, now), "2 d ago");
    assert.equal(fmtAgo(local(2026, 3, 2, 8, 0, 0), now), "2026-04-02");
    assert.equal(fmtAgo(undefined, now), "—");
  });

  test("fmtClock: as precise as the axis step", () => {
    const t = local(2026, 0, 15, 9, 5, 7, 250);
    assert.equal(fmtClock(t, 1), "09:05:07");
    assert.equal(fmtClock(t, 60), "09:05");
    assert.equal(fmtClock(t, 86400), "1/15");
    assert.equal(fmtClock(t, 0.5), "07.2");
    assert.equal(fmtClock(t, 0.05), "07.25");
    assert.equal(fmtClock(t, 0.005), "07.250");
  });

  test("fmtRelTick: durations on a relative-time axis", () => {
    assert.equal(fmtRelTick(0, 10), "0");
    assert.equal(fmtRelTick(45, 15), "45s");
    assert.equal(fmtRelTick(90, 30), "1m30s");
    assert.equal(fmtRelTick(-90, 30), "−1m30s");
    assert.equal(fmtRelTick(600, 300), "10m");
    assert.equal(fmtRelTick(5400, 1800), "1h30");
    assert.equal(fmtRelTick(9000, 3600), "2h30");
    assert.equal(fmtRelTick(2 * 86400 + 5 * 3600, 86400), "2d5h");
    assert.equal(fmtRelTick(0.25, 0.05), "0.25s");
  });
});

describe("fmtBytes", () => {
  test("B, kB, MB... in powers of 1000", () => {
    assert.equal(fmtBytes(0), "0 B");
    assert.equal(fmtBytes(812), "812 B");
    assert.equal(fmtBytes(1400000), "1.40 MB");
    assert.equal(fmtBytes(2.5e12), "2.50 TB");
    assert.equal(fmtBytes(NaN), "—");
    assert.equal(fmtBytes(null), "—");
  });
});

describe("fmtValue and fmtShape", () => {
  test("plain values", () => {
    assert.equal(fmtValue(null), "—");
    assert.equal(fmtValue(true), "true");
    assert.equal(fmtValue("text"), "text");
    assert.equal(fmtValue(0.25), "0.25");
    assert.equal(fmtValue([1, 2]), "[1,2]");
    assert.equal(fmtValue({ a: 1 }), '{"a":1}');
  });

  test("typed values", () => {
    assert.equal(fmtValue(F("NaN")), "NaN");
    assert.equal(fmtValue(F("Infinity")), "∞");
    assert.equal(fmtValue(F("-Infinity")), "−∞");
    assert.equal(fmtValue({ _type: "histogram", counts: [1, 2, 3], bins: [0, 1, 2, 3] }), "histogram (3 bins)");
    assert.equal(fmtValue({ _type: "tensor", shape: [4, 16], dtype: "float32" }), "tensor 4×16 float32");
    assert.equal(fmtValue({ _type: "tensor", shape: [] }), "tensor scalar");
    assert.equal(fmtValue({ _type: "image", width: 28, height: 32 }), "image 28×32");
    assert.equal(fmtValue({ _type: "audio" }), "audio");
  });

  test("a value JSON cannot write is still written", () => {
    const loop = {};
    loop.self = loop;
    assert.equal(fmtValue(loop), "[object Object]");
  });

  test("shapes", () => {
    assert.equal(fmtShape([4, 16, 32]), "4×16×32");
    assert.equal(fmtShape([]), "scalar");
    assert.equal(fmtShape(undefined), "");
  });
});
