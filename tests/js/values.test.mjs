// API values as numbers: the protocol's NaN and ±inf, booleans, the rest.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { isTyped, numeric } from "../../gradexp/server/static/assets/js/lib/values.js";

const F = (value) => ({ _type: "float", value });

describe("numeric", () => {
  test("numbers as they are, booleans as 0/1", () => {
    assert.equal(numeric(1.5), 1.5);
    assert.equal(numeric(-0), -0);
    assert.equal(numeric(true), 1);
    assert.equal(numeric(false), 0);
  });

  test("the protocol's non-finite floats", () => {
    assert.ok(Number.isNaN(numeric(F("NaN"))));
    assert.equal(numeric(F("Infinity")), Infinity);
    assert.equal(numeric(F("-Infinity")), -Infinity);
    assert.ok(Number.isNaN(numeric(F("garbage"))));
  });

  test("anything else is not a number (null)", () => {
    for (const v of ["3", null, undefined, {}, [], { _type: "histogram", norm: 1 }]) assert.equal(numeric(v), null);
  });
});

describe("isTyped", () => {
  test("an object with a _type", () => {
    assert.equal(isTyped({ _type: "tensor" }), true);
    assert.equal(isTyped(F("NaN")), true);
    for (const v of [null, {}, [], "x", 3, { _type: "" }]) assert.equal(isTyped(v), false);
  });
});
