// Unit tests of the page scripts' pure parts (they load in Node without a document).
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");

const blocks = require("../../site/static/blocks-model.js");
const layer = require("../../site/static/layer.js");
const map = require("../../site/static/atlas-model.js");

test("the diverging scale: white at zero, the full colour at the scale, white without a value", () => {
  assert.equal(blocks.diverging(0, 2), "rgb(255,255,255)");
  assert.equal(blocks.diverging(2, 2), "rgb(179,88,6)"); // orange: for
  assert.equal(blocks.diverging(-4, 2), "rgb(84,39,136)"); // purple: against, clipped
  assert.equal(blocks.diverging(1, 2), "rgb(217,172,131)"); // half way: 255 + (179 - 255) / 2 = 217
  assert.equal(blocks.diverging(null, 2), "rgb(255,255,255)");
  assert.equal(blocks.diverging(1, 0), "rgb(255,255,255)");
});

test("chosen: one class's row, or the difference of two, at any depth", () => {
  const rows = [[1, [2, 3]], [10, [20, 30]]];
  assert.deepEqual(blocks.chosen(rows, { t: 1, minus: null }), [10, [20, 30]]);
  assert.deepEqual(blocks.chosen(rows, { t: 1, minus: 0 }), [9, [18, 27]]);
  assert.equal(blocks.chosen([5, 2], { t: 0, minus: 1 }), 3); // per-class scalars (a layer's total)
  assert.equal(blocks.chosen(undefined, { t: 0, minus: null }), null);
  assert.deepEqual(blocks.chosenColumn([[1, 4], [2, 8]], { t: 1, minus: 0 }), [3, 6]);
});

test("class names, cells and the largest magnitude", () => {
  const classes = [{ name: "cat" }, { name: "dog" }];
  assert.equal(blocks.className(classes, { t: 0, minus: null }), "cat");
  assert.equal(blocks.className(classes, { t: 0, minus: 1 }), "cat minus dog");
  assert.equal(blocks.rowCol({ gw: 4 }, 6), "(1, 2)");
  assert.equal(blocks.maxAbs([1, -3, null, 2]), 3);
  assert.equal(blocks.centreCell({ gh: 4, gw: 4 }), 10);
});

test("arrow keys move a grid cursor and stop at the edge", () => {
  const grid = { gh: 3, gw: 3 };
  assert.equal(blocks.moveCell(grid, 4, "ArrowUp"), 1);
  assert.equal(blocks.moveCell(grid, 4, "ArrowRight"), 5);
  assert.equal(blocks.moveCell(grid, 0, "ArrowLeft"), 0);
  assert.equal(blocks.moveCell(grid, 8, "ArrowDown"), 8);
  assert.equal(blocks.moveCell(grid, 4, "Enter"), null);
});

test("the channels most for and most against a class", () => {
  const values = [0.5, -2, 3, 0, -1, 3];
  assert.deepEqual(blocks.strongestChannels(values, 2), [[2, 5], [1, 4]]);
  assert.deepEqual(blocks.strongestChannels([1, 2], 6), [[1, 0], []]);
});

test("flows into one cell, or summed over all cells", () => {
  const rows = [[1, 2], [3, 4]];
  assert.deepEqual(blocks.flowValues(rows, 1), [3, 4]);
  assert.deepEqual(blocks.flowValues(rows, null), [4, 6]);
});

test("layer sorting: largest first, missing values last, ties by channel", () => {
  const tiles = [[0, 1], [1, NaN], [2, 3], [3, 1]]; // [channel, value]
  const sorted = tiles.slice().sort((a, b) => layer.compareBy("mean", a[1], b[1], a[0], b[0]));
  assert.deepEqual(sorted.map((t) => t[0]), [2, 0, 3, 1]);
  const byChannel = sorted.slice().sort((a, b) => layer.compareBy("channel", a[1], b[1], a[0], b[0]));
  assert.deepEqual(byChannel.map((t) => t[0]), [0, 1, 2, 3]);
});

test("layer scores: the value under a sorted tile, the filter and its count", () => {
  assert.equal(layer.sortedText("strength", 0.123456), "0.1235");
  assert.equal(layer.sortedText("fires-images", 0.5), "50 %"); // a share, as the scorecard shows it
  assert.equal(layer.sortedText("path-flag", 1), "flagged");
  assert.equal(layer.sortedText("path-flag", 0), "");
  assert.equal(layer.sortedText("strength", NaN), ""); // no value in this run
  assert.equal(layer.sortedText("channel", 3), "");
  assert.equal(layer.passes("clear weak", "weak"), true);
  assert.equal(layer.passes("clear", "weak"), false);
  assert.equal(layer.passes("clearer", "clear"), false); // tokens, not substrings
  assert.equal(layer.passes("", ""), true);
  assert.equal(layer.passes(null, "clear"), false);
  assert.equal(layer.countText(2, 5), "2 of 5 channels shown");
  assert.equal(layer.countText(5, 5), "");
  assert.equal(layer.viewClass("filter"), "show-filters");
  assert.equal(layer.viewClass("visualization"), "");
  assert.equal(layer.viewClass(null), ""); // an unknown view: the visualizations
});

test("atlas map: an arrow goes to the nearest cell that way, a step across counting twice", () => {
  const cells = [{ i: 0, j: 0 }, { i: 0, j: 2 }, { i: 1, j: 1 }, { i: 2, j: 0 }];
  assert.equal(map.nearestCell(cells, 0, 0, 1), 1); // right: (0,2) costs 2, (1,1) costs 1 + 2 * 1
  assert.equal(map.nearestCell(cells, 0, 1, 0), 3); // down: (2,0) costs 2, (1,1) costs 3
  assert.equal(map.nearestCell(cells, 0, -1, 0), 0); // up: no cell, the cursor stays
  assert.equal(map.nearestCell(cells, 1, 0, 1), 1); // right of (0,2): no cell further right
});

test("atlas map: the class filter's shading", () => {
  assert.equal(map.shade(2, 2, false), 1);
  assert.equal(map.shade(-1, 2, false), 0.08); // against the one class: faded
  assert.equal(map.shade(-1, 2, true), 0.15 + 0.85 / 2); // comparing: the difference's size
});

test("atlas map: a cell's place, and the finest level whose cells are at least 28 px wide", () => {
  assert.deepEqual(map.cellBox({ i: 1, j: 3 }, 4), { left: "75%", top: "25%", size: "25%" });
  const sides = [2, 4, 8];
  assert.equal(map.levelFor(sides, 640, 1), 2); // 8 x 8 cells of 80 px
  assert.equal(map.levelFor(sides, 100, 1), 0); // 50 px cells at 2 x 2, 25 px at 4 x 4
  assert.equal(map.levelFor(sides, 100, 2), 1); // zoomed twice: 4 x 4 cells of 50 px
  assert.equal(map.levelFor(sides, 20, 1), 0); // none fits: the coarsest
});

test("atlas map: zoom keeps the pointed-at point, clamps to 1-16, and pans stay on the map", () => {
  const whole = map.wholeMap();
  // Zoom 2 around (100, 50): that point of the world stays under the pointer.
  assert.deepEqual(map.zoomView(whole, 2, 100, 50), { scale: 2, x: -100, y: -50 });
  assert.deepEqual(map.zoomView(whole, 0.5, 100, 50), whole); // never below the whole map
  assert.equal(map.zoomView({ scale: 8, x: 0, y: 0 }, 4, 0, 0).scale, 16);
  // At scale 2 on a 400 px map the world is 800 px: x and y stay in [-400, 0].
  assert.deepEqual(map.clampView({ scale: 2, x: 50, y: -500 }, 400), { scale: 2, x: 0, y: -400 });
  assert.deepEqual(map.pannedView({ scale: 2, x: 0, y: 0 }, { vx: -10, vy: -20 }, 5, -5), { scale: 2, x: -5, y: -25 });
  assert.equal(map.isPan(2, 1), false); // 3 px: still a click
  assert.equal(map.isPan(2, -2), true);
  assert.equal(map.transform({ scale: 1.5, x: -3, y: 0 }), "translate(-3px,0px) scale(1.5)");
});

test("atlas map: the keys of the map, and an arrow's first cell", () => {
  assert.deepEqual(map.keyAction("ArrowDown"), { step: [1, 0] });
  assert.deepEqual(map.keyAction("="), { action: "zoomIn" });
  assert.deepEqual(map.keyAction("_"), { action: "zoomOut" });
  assert.deepEqual(map.keyAction("0"), { action: "wholeMap" });
  assert.deepEqual(map.keyAction(" "), { action: "pin" });
  assert.equal(map.keyAction("u"), null); // the page's shortcut, not the map's
  assert.equal(map.keyAction("toString"), null);
  const cells = [{ i: 0, j: 0 }, { i: 0, j: 1 }];
  assert.equal(map.arrowTarget(cells, null, [0, 1]), 0); // no cursor yet: the first cell
  assert.equal(map.arrowTarget(cells, 0, [0, 1]), 1);
});

test("atlas map: the filter's values, shading and note", () => {
  const values = { 3: [[1, -2]], 5: [[4, 1]] }; // class -> level -> cell
  assert.equal(map.filterValue(values, "3", "", 0, 1), -2);
  assert.equal(map.filterValue(values, "3", "5", 0, 0), -3); // 1 - 4
  assert.equal(map.filterValue(values, "3", "7", 0, 0), null); // class 7 not loaded yet
  assert.equal(map.filterValue(values, "", "", 0, 0), null);
  assert.equal(map.filterLoaded(values, "3", "7"), false);
  // One class: the scale is the largest magnitude (2); -2 fades, 1 is half way up.
  assert.deepEqual(map.shading([1, -2, null], false), [
    { value: 1, opacity: 0.15 + 0.85 / 2, side: null },
    { value: -2, opacity: 0.08, side: null },
    null,
  ]);
  assert.deepEqual(map.shading([-4, 4], true).map((look) => look.side), ["against", "for"]);
  assert.deepEqual(map.shading([0, 0], false), [null, null]); // nothing above zero: unshaded
  const names = { 3: "cat", 5: "dog" };
  assert.equal(map.filterNote(names, "", "", false), "");
  assert.equal(map.filterNote(names, "3", "", false), "loading…");
  assert.equal(map.filterNote(names, "3", "", true), "Brighter cells support cat more.");
  assert.equal(map.filterNote(names, "3", "5", true), "Orange: supports cat more; purple: dog.");
});

test("atlas map: the level note and the panel's heading", () => {
  assert.equal(map.levelNote(4, 9), "Level 4 × 4: 9 cells with vectors");
  assert.equal(map.cellTitle({ i: 2, j: 3 }, 8), "Cell (2, 3) of 8 × 8");
  assert.equal(map.cellCount({ n: 1 }, false), "1 activation vector");
  assert.equal(map.cellCount({ n: 30 }, true), "30 activation vectors · pinned");
});

test("a channel and a neuron group as the Building Blocks name them, with their labels", () => {
  const conv = { name: "conv", labels: { 1: "retriever", 2: "dog (tentative)" }, groups: { labels: [{ short: "retriever" }, { short: "no clear label" }, null] } };
  assert.equal(blocks.channelText(conv, 1), "conv:1 retriever");
  assert.equal(blocks.channelText(conv, 2), "conv:2 dog (tentative)");
  assert.equal(blocks.channelText(conv, 3), "conv:3");
  assert.equal(blocks.channelText({ name: "mix" }, 0), "mix:0");  // a page without labels
  assert.equal(blocks.groupText(conv, 0), "group 1 · retriever");
  assert.equal(blocks.groupText(conv, 1), "group 2");  // no clear label: not named
  assert.equal(blocks.groupText(conv, 2), "group 3");
  assert.equal(blocks.groupText({ name: "mix", groups: { colours: [] } }, 0), "group 1");
});

test("atlas map: a cell's tooltip says its label", () => {
  assert.equal(map.cellTip({ i: 2, j: 3, label: { short: "dog (tentative)", line: "dog …" } }), "(2, 3) dog (tentative)");
  assert.equal(map.cellTip({ i: 0, j: 1, label: null }), "(0, 1)");
});
