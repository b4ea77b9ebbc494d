// A logged table's rows: from the columnar file, sorted, filtered, paged.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { cellText, compareCells, isImageCell, pageOf, tableRows, visibleRows } from "../../gradexp/server/static/assets/js/lib/table.js";

const NAN = { _type: "float", value: "NaN" };
const img = (path, caption) => ({ path, sha256: "0".repeat(64), size: 10, width: 4, height: 4, ...(caption ? { caption } : {}) });

describe("tableRows", () => {
  test("columns become rows in order", () => {
    const doc = { format: "gradexp.table/1", rows: 2, columns: [{ name: "a", type: "number" }, { name: "b", type: "string" }], data: [[1, 2], ["x", "y"]] };
    assert.deepEqual(tableRows(doc), [[1, "x"], [2, "y"]]);
  });
  test("a table of no columns still has its row count", () => {
    assert.deepEqual(tableRows({ format: "gradexp.table/1", rows: 2, columns: [], data: [] }), [[], []]);
  });
});

describe("cells", () => {
  test("text of every kind of cell", () => {
    assert.equal(cellText(null), "");
    assert.equal(cellText(true), "true");
    assert.equal(cellText(0.5), "0.5");
    assert.equal(cellText(NAN), "NaN");
    assert.equal(cellText({ _type: "float", value: "-Infinity" }), "-inf");
    assert.equal(cellText(img("a.png", "a cat")), "a cat");
    assert.equal(isImageCell(img("a.png")), true);
    assert.equal(isImageCell({ _type: "float", value: "NaN" }), false);
  });

  test("numbers sort numerically, NaN and empty cells last in both directions", () => {
    const cells = [3, null, NAN, -1, 10, 2];
    const asc = [...cells].sort((a, b) => compareCells(a, b, 1));
    const desc = [...cells].sort((a, b) => compareCells(a, b, -1));
    assert.deepEqual(asc, [-1, 2, 3, 10, NAN, null]);
    assert.deepEqual(desc, [10, 3, 2, -1, NAN, null]);
  });

  test("strings sort as people read them, after numbers", () => {
    assert.ok(compareCells("b", "a", 1) > 0);
    assert.ok(compareCells("img2", "img10", 1) < 0);
    assert.ok(compareCells("B", "a", 1) > 0);
    assert.ok(compareCells(1, "a", 1) < 0);
  });
});

describe("visibleRows", () => {
  const rows = [
    [0, "cat", true, img("0.png", "tabby")],
    [1, "dog", false, img("1.png")],
    [2, "Catfish", null, null],
    [3, "bird", true, null],
  ];
  test("all rows in logged order by default", () => {
    assert.deepEqual(visibleRows(rows), [0, 1, 2, 3]);
  });
  test("the filter keeps rows where any cell contains the text, ignoring case", () => {
    assert.deepEqual(visibleRows(rows, { filter: "CAT" }), [0, 2]);
    assert.deepEqual(visibleRows(rows, { filter: "tabby" }), [0]); // an image's caption
    assert.deepEqual(visibleRows(rows, { filter: "zebra" }), []);
  });
  test("sorting by a column, stable, with empty cells last", () => {
    assert.deepEqual(visibleRows(rows, { sortCol: 1 }), [3, 0, 2, 1]); // bird, cat, Catfish, dog
    assert.deepEqual(visibleRows(rows, { sortCol: 2, dir: -1 }), [0, 3, 1, 2]);
    assert.deepEqual(visibleRows(rows, { sortCol: 2, dir: 1 }), [1, 0, 3, 2]);
  });
  test("filter and sort together", () => {
    assert.deepEqual(visibleRows(rows, { filter: "cat", sortCol: 0, dir: -1 }), [2, 0]);
  });
});

describe("pageOf", () => {
  test("pages clamp to what exists", () => {
    assert.deepEqual(pageOf(250, 0, 100), { page: 0, pages: 3, start: 0, end: 100 });
    assert.deepEqual(pageOf(250, 2, 100), { page: 2, pages: 3, start: 200, end: 250 });
    assert.deepEqual(pageOf(250, 9, 100), { page: 2, pages: 3, start: 200, end: 250 });
    assert.deepEqual(pageOf(0, 0, 100), { page: 0, pages: 1, start: 0, end: 0 });
  });
});
