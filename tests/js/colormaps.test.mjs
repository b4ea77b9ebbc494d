// Colour maps and the colour scale of a tensor slice.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { cssColor, lut, valueScale } from "../../gradexp/server/static/assets/js/lib/colormaps.js";

const rgb = (table, i) => [table[i * 3], table[i * 3 + 1], table[i * 3 + 2]];

describe("lut", () => {
  test("256 colours whose ends are the map's first and last control points", () => {
    const t = lut("density");
    assert.equal(t.length, 256 * 3);
    assert.deepEqual(rgb(t, 0), [248, 250, 252]);
    assert.deepEqual(rgb(t, 255), [23, 37, 84]);
  });

  test("the diverging map is white in the middle", () => {
    const [r, g, b] = rgb(lut("diverging"), 127);
    assert.ok(r > 240 && g > 240 && b > 240, `${r},${g},${b}`);
  });

  test("interpolates between control points", () => {
    const t = lut("sequential");
    // position 0.3 is a control point (44, 105, 154): entry 76.5 lies between 76 and 77
    const [r76] = rgb(t, 76);
    const [r77] = rgb(t, 77);
    assert.ok(Math.min(r76, r77) <= 44 && Math.max(r76, r77) >= 43, `${r76}, ${r77}`);
  });

  test("is made once per name", () => {
    assert.equal(lut("diverging"), lut("diverging"));
  });

  test("an unknown name gives the sequential map", () => {
    assert.deepEqual([...lut("no-such-map")], [...lut("sequential")]);
  });
});

describe("cssColor", () => {
  test("an rgb() colour, t clamped to [0, 1]", () => {
    assert.equal(cssColor("density", 0), "rgb(248, 250, 252)");
    assert.equal(cssColor("density", -5), "rgb(248, 250, 252)");
    assert.equal(cssColor("density", 7), "rgb(23, 37, 84)");
  });
});

describe("valueScale", () => {
  test("both signs: diverging, symmetric around 0", () => {
    const s = valueScale(-2, 1);
    assert.equal(s.name, "diverging");
    assert.equal(s.lo, -2);
    assert.equal(s.hi, 2);
    assert.equal(s.index(-2), 0);
    assert.equal(s.index(2), 255);
    assert.equal(s.index(0), 128);
  });

  test("one sign: sequential over [lo, hi]", () => {
    const s = valueScale(1, 3);
    assert.equal(s.name, "sequential");
    assert.deepEqual([s.index(1), s.index(2), s.index(3)], [0, 128, 255]);
    assert.equal(valueScale(-4, 0).name, "sequential");
    assert.equal(valueScale(0, 4).name, "sequential");
  });

  test("values past the ends are clamped", () => {
    assert.equal(valueScale(1, 3).index(-100), 0);
    assert.equal(valueScale(1, 3).index(1e300), 255);
    assert.equal(valueScale(-1, 1).index(5), 255);
  });

  test("NaN and ±inf get the special colour (-1)", () => {
    for (const s of [valueScale(1, 3), valueScale(-1, 1)]) {
      assert.equal(s.index(NaN), -1);
      assert.equal(s.index(Infinity), -1);
      assert.equal(s.index(-Infinity), -1);
    }
  });

  test("a constant slice maps to the first colour", () => {
    assert.equal(valueScale(5, 5).index(5), 0);
  });

  test("no finite range (NaN, or lo > hi): everything special", () => {
    for (const s of [valueScale(NaN, NaN), valueScale(3, 1)]) {
      assert.equal(s.name, "sequential");
      assert.equal(s.index(2), -1);
    }
  });
});
