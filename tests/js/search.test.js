// The search ranking (site/static/search.js) against the table that pipeline/search.py is
// tested against too (tests/test_search.py).
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const search = require("../../site/static/search.js");

const table = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "data", "search_ranking.json"), "utf8"));

function named(entries, found) {
  return found.map((f) => [entries[f.entry].name, f.match, f.via === null ? null : entries[f.via].name]);
}

for (const c of table.cases) {
  test(`the shared table: ${JSON.stringify(c.query)}${c.k ? " k=" + c.k : ""}`, () => {
    const entries = search.prepare(JSON.parse(JSON.stringify(table.entries)));
    assert.deepEqual(named(entries, search.search(entries, c.query, c.k)), c.expected);
  });
}

test("natural order and channel queries", () => {
  assert.deepEqual(search.naturalKey("Conv:10"), ["conv:", 10, ""]);
  const layers = { conv: "conv", first: "conv" };
  assert.deepEqual(search.canonicalQuery(" First  03 ", layers), { text: "conv:3", layer: "conv", channel: 3 });
  assert.equal(search.canonicalQuery("tabby 3", layers).text, "tabby 3");
});

test("a result says its kind, label, why it matched and when it has no page", () => {
  const entries = search.prepare(JSON.parse(JSON.stringify(table.entries)));
  assert.equal(search.describe(entries, { entry: 5, via: 8 }), "channel \u00b7 dog (0.5) \u00b7 a kind of dog \u00b7 no page");
  assert.equal(search.describe(entries, { entry: 0, via: null }), "layer \u00b7 11 channels \u00b7 no page");
});
