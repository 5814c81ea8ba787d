// Unit tests of the comparison site's pair-page sort (site/static/compare.js).
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");

const compare = require("../../site/static/compare.js");

const rows = [
  { corr: 0.5, a: 2, b: 9 },
  { corr: NaN, a: 0, b: 1 },
  { corr: 0.9, a: 5, b: 0 },
  { corr: 0.5, a: 1, b: 4 },
];

function order(key) {
  return rows.slice().sort((x, y) => compare.compareRows(key, x, y)).map((r) => r.a);
}

test("by correlation: largest first, ties by the first run's channel, missing last", () => {
  assert.deepEqual(order("corr"), [5, 1, 2, 0]);
});

test("by either run's channel, ascending", () => {
  assert.deepEqual(order("a"), [0, 1, 2, 5]);
  assert.deepEqual(order("b"), [5, 0, 1, 2]);
});
