// Unit tests of site/static/common.js (run by `make test` as `node --test tests/js/`).
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { fakeDocument } = require("./fake-dom.js");

const common = require("../../site/static/common.js");

// The table Python's twin (pipeline/site/numbers.py) is tested against too.
const table = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "data", "number_format.json"), "utf8"));
const SPECIAL = { NaN: NaN, inf: Infinity, "-inf": -Infinity };

test("the shared number format table", async (t) => {
  for (const c of table.cases) {
    const value = typeof c.value === "string" ? SPECIAL[c.value] : c.value;
    await t.test(String(c.value), () => {
      assert.equal(common.formatNumber(value), c.plain);
      assert.equal(common.formatSigned(value), c.signed);
    });
  }
});

test("undefined and text that is not a number read as the dash", () => {
  assert.equal(common.formatNumber(undefined), common.DASH);
  assert.equal(common.formatSigned("not a number"), common.DASH);
  assert.equal(common.formatNumber("2.5"), "2.5"); // a data-* attribute's text
});

test("el sets text as text and every attribute", () => {
  global.document = fakeDocument();
  try {
    const node = common.el("a", "<b>x</b>", { href: "a b.html", "class": "value" });
    assert.equal(node.tagName, "A");
    assert.equal(node.textContent, "<b>x</b>");
    assert.deepEqual(node.attributes, { href: "a b.html", class: "value" });
    assert.equal(common.el("span", 0).textContent, "0"); // zero is text, not "no text"
    assert.equal(common.el("span").textContent, "");
    assert.equal(common.el("span", null).textContent, "");
  } finally {
    delete global.document;
  }
});

test("readJson reads a page's embedded data, null without it", () => {
  global.document = fakeDocument({ "page-data": '{"layers":[["conv",4]]}' });
  try {
    assert.deepEqual(common.readJson("page-data"), { layers: [["conv", 4]] });
    assert.equal(common.readJson("missing"), null);
  } finally {
    delete global.document;
  }
});

test("urlSegment percent-encodes a file name", () => {
  assert.equal(common.urlSegment("mix.a"), "mix.a");
  assert.equal(common.urlSegment("a/b c"), "a%2Fb%20c");
});

function link(shortcut) {
  return { getAttribute: (name) => (name === "data-shortcut" ? shortcut : null) };
}
function key(k, extra) {
  return Object.assign({ key: k, target: { closest: () => null } }, extra);
}

test("a shortcut key finds its link", () => {
  const links = [link("l"), link("ArrowRight")];
  assert.equal(common.shortcutTarget(key("ArrowRight"), links), links[1]);
  assert.equal(common.shortcutTarget(key("x"), links), null);
});

test("a shortcut does not fire with a modifier, when handled, or inside a field or map", () => {
  const links = [link("l")];
  assert.equal(common.shortcutTarget(key("l", { ctrlKey: true }), links), null);
  assert.equal(common.shortcutTarget(key("l", { altKey: true }), links), null);
  assert.equal(common.shortcutTarget(key("l", { defaultPrevented: true }), links), null);
  const inField = { closest: (selector) => (selector.includes("input") ? {} : null) };
  assert.equal(common.shortcutTarget(key("l", { target: inField }), links), null);
});
