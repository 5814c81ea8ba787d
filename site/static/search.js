/* The search box in every page's header (needs #site-search): layers, channels
   ("layer:channel", "layer channel", an alias), classes and their WordNet synonyms, kinds of
   thing ("dog" lists every dog breed) and images. Classic script after common.js.

   The index (search-index.js at the site's root, assigning ModelAtlasSearchIndex) is large,
   so it loads only when the box is first focused or typed in, as a <script> element (no
   fetch from file://). The ranking is pipeline/search.py's rule, written again here; both
   are tested against tests/data/search_ranking.json. */
(function (atlas) {
  "use strict";

  var KINDS = ["layer", "channel", "class", "synset", "image"];
  var MATCHES = ["exact", "hyponym", "prefix", "substring"];
  var CHANNEL_QUERY = /^(.+?)\s*[:\s]\s*(\d+)$/;
  var RESULTS = 20;

  // Lower case, spaces squeezed and trimmed: what queries and terms are compared as.
  function normalized(text) { return String(text).toLowerCase().split(/\s+/).filter(Boolean).join(" "); }

  // "conv:10" after "conv:2": runs of digits compare as numbers.
  function naturalKey(name) {
    return normalized(name).split(/(\d+)/).map(function (p, i) { return i % 2 ? parseInt(p, 10) : p; });
  }

  function compareKeys(a, b) {
    for (var i = 0; i < Math.min(a.length, b.length); i++) {
      if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
    }
    return a.length - b.length;
  }

  // Each entry's terms (name and synonyms, normalized) and sort key, computed once.
  function prepare(entries) {
    entries.forEach(function (e) {
      var terms = [normalized(e.name)];
      (e.synonyms || []).forEach(function (s) { if (terms.indexOf(normalized(s)) < 0) terms.push(normalized(s)); });
      e.terms = terms;
      e.key = naturalKey(e.name);
    });
    return entries;
  }

  // Normalized layer name or alias -> normalized layer name.
  function layerNames(entries) {
    var out = {};
    entries.forEach(function (e) {
      if (e.kind === "layer") e.terms.forEach(function (t) { out[t] = normalized(e.name); });
    });
    return out;
  }

  // The normalized query, "layer 5" and "alias:5" read as "layer:5"; with the channel's
  // layer and number when it names one.
  function canonicalQuery(query, layers) {
    var q = normalized(query), found = q.match(CHANNEL_QUERY);
    if (found && Object.prototype.hasOwnProperty.call(layers, found[1])) {
      var layer = layers[found[1]], channel = parseInt(found[2], 10);
      return { text: layer + ":" + channel, layer: layer, channel: channel };
    }
    return { text: q, layer: null, channel: null };
  }

  function termMatch(terms, q) {
    var best = null;
    terms.forEach(function (t) {
      var rank = t === q ? 0 : t.indexOf(q) === 0 ? 2 : t.indexOf(q) > 0 ? 3 : null;
      if (rank !== null && (best === null || rank < best)) best = rank;
    });
    return best;
  }

  function order(entries, a, b) {
    var x = entries[a.entry], y = entries[b.entry];
    var ca = x.confidence === undefined || x.confidence === null ? Infinity : -x.confidence;
    var cb = y.confidence === undefined || y.confidence === null ? Infinity : -y.confidence;
    return a.rank - b.rank || KINDS.indexOf(x.kind) - KINDS.indexOf(y.kind) ||
      (x.seen === false) - (y.seen === false) || (ca === cb ? 0 : ca < cb ? -1 : 1) ||
      compareKeys(x.key, y.key) || a.entry - b.entry;
  }

  // The k best entries for a query, best first: [{entry, match, via}] (pipeline/search.py).
  function search(entries, query, k) {
    var q = canonicalQuery(query, layerNames(entries)).text;
    if (!q) return [];
    var ranks = entries.map(function (e) { return termMatch(e.terms, q); }), exact = {};
    ranks.forEach(function (r, i) { if (r === 0) exact[i] = true; });
    var found = [];
    entries.forEach(function (e, i) {
      var rank = ranks[i], via = null;
      if (rank !== 0) {
        var above = (e.under || []).filter(function (u) { return exact[u]; });
        if (above.length) { rank = 1; via = Math.min.apply(null, above); }
      }
      if (rank !== null && e.kind !== "synset") found.push({ rank: rank, entry: i, via: via });
    });
    found.sort(function (a, b) { return order(entries, a, b); });
    return found.slice(0, k === undefined ? RESULTS : k).map(function (f) {
      return { entry: f.entry, match: MATCHES[f.rank], via: f.via };
    });
  }

  // What a result says beside its name: its kind, its label, why it matched, if it has no page.
  function describe(entries, result) {
    var e = entries[result.entry], parts = [e.kind];
    if (e.label) parts.push(e.label + (e.confidence !== undefined && e.confidence !== null ? " (" + atlas.formatNumber(e.confidence) + ")" : ""));
    if (result.via !== null) parts.push("a kind of " + entries[result.via].name);
    if (e.detail) parts.push(e.detail);
    if (!e.url) parts.push("no page");
    return parts.join(" \u00b7 ");
  }

  // The box's state and elements: the index once loaded, the results shown, the active one.
  function searchBox(form) {
    var byId = function (id) { return document.getElementById(id); };
    return { form: form, box: byId("site-search-box"), list: byId("site-search-results"),
      status: byId("site-search-status"), note: byId("site-search-note"),
      root: form.getAttribute("data-root") || "", entries: null, loading: false, shown: [], active: -1 };
  }

  // The index is a classic script (no fetch from file://), added on first use.
  function load(ui) {
    if (ui.entries || ui.loading) return;
    ui.loading = true;
    var script = document.createElement("script");
    script.src = ui.form.getAttribute("data-index");
    script.onload = function () {
      var index = window.ModelAtlasSearchIndex;
      ui.entries = prepare(index ? index.entries : []);
      update(ui);
    };
    script.onerror = function () { say(ui, "The search index did not load."); };
    document.head.appendChild(script);
    say(ui, "Loading the search index\u2026");
  }

  // Tells screen readers (the status region) and, unless visible is false, sighted users.
  function say(ui, text, visible) {
    ui.status.textContent = text;
    ui.note.textContent = visible === false ? "" : text;
  }

  function close(ui) {
    ui.list.hidden = true;
    ui.box.setAttribute("aria-expanded", "false");
    ui.box.removeAttribute("aria-activedescendant");
    ui.active = -1;
  }

  function update(ui) {
    while (ui.list.firstChild) ui.list.removeChild(ui.list.firstChild);
    close(ui);
    if (!ui.entries) return;
    ui.shown = ui.box.value.trim() ? search(ui.entries, ui.box.value) : [];
    ui.shown.forEach(function (result, i) { ui.list.appendChild(option(ui, result, i)); });
    if (ui.shown.length) {
      ui.list.hidden = false;
      ui.box.setAttribute("aria-expanded", "true");
      var n = ui.shown.length;
      say(ui, n + (n === 1 ? " result" : " results") + "; arrow keys move, Enter opens", false);
    } else {
      say(ui, ui.box.value.trim() ? noMatch(ui) : "");
    }
  }

  // Nothing matches; for a channel past the layer's end, which channels it has.
  function noMatch(ui) {
    var q = canonicalQuery(ui.box.value, layerNames(ui.entries));
    if (q.layer === null) return "Nothing matches.";
    var channels = ui.entries.filter(function (e) {
      return e.kind === "channel" && normalized(e.name).indexOf(q.layer + ":") === 0;
    });
    return q.layer + " has channels 0-" + (channels.length - 1) + ".";
  }

  // A result: a link (an option of the listbox) with its thumbnail, name and description.
  function option(ui, result, i) {
    var e = ui.entries[result.entry];
    var attrs = { role: "option", id: "site-search-option-" + i, "aria-selected": "false", "class": "site-search-option" };
    if (e.url) { attrs.href = ui.root + e.url; attrs.tabindex = "-1"; } else attrs["aria-disabled"] = "true";
    if (e.thumb) attrs["class"] += " has-thumb";
    var node = atlas.el(e.url ? "a" : "div", null, attrs);
    if (e.thumb) node.appendChild(atlas.el("img", null, { src: ui.root + e.thumb, alt: "", width: "32", height: "32" }));
    var text = atlas.el("span", null, { "class": "site-search-text" });
    text.appendChild(atlas.el("span", e.name, { "class": "site-search-name" }));
    text.appendChild(atlas.el("span", describe(ui.entries, result), { "class": "site-search-kind" }));
    node.appendChild(text);
    node.addEventListener("mousedown", function (event) { event.preventDefault(); });  // the box keeps focus
    return node;
  }

  function move(ui, to) {
    var options = ui.list.children;
    if (!options.length) return;
    if (ui.active >= 0) options[ui.active].setAttribute("aria-selected", "false");
    ui.active = (to + options.length) % options.length;
    options[ui.active].setAttribute("aria-selected", "true");
    ui.box.setAttribute("aria-activedescendant", options[ui.active].id);
    options[ui.active].scrollIntoView({ block: "nearest" });
  }

  // Enter opens the active result, or the first with a page.
  function follow(ui) {
    var chosen = ui.active >= 0 ? ui.list.children[ui.active] : ui.list.querySelector("a[role=option]");
    if (chosen && chosen.getAttribute("href")) window.location.href = chosen.href;
  }

  function onKey(ui, event) {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      var step = event.key === "ArrowDown" ? 1 : -1;
      if (ui.list.hidden) update(ui);
      move(ui, ui.active < 0 ? Math.min(step, 0) : ui.active + step);
    } else if (event.key === "Escape") {
      if (!ui.list.hidden) close(ui);
      else { ui.box.value = ""; update(ui); }
    }
  }

  function start() {
    var form = document.getElementById("site-search");
    if (!form) return;
    var ui = searchBox(form);
    ui.box.addEventListener("focus", function () { load(ui); });
    ui.box.addEventListener("input", function () { load(ui); update(ui); });
    ui.box.addEventListener("keydown", function (event) { onKey(ui, event); });
    form.addEventListener("submit", function (event) { event.preventDefault(); follow(ui); });
    form.addEventListener("focusout", function (event) { if (!form.contains(event.relatedTarget)) close(ui); });
  }

  var api = { KINDS: KINDS, normalized: normalized, naturalKey: naturalKey, prepare: prepare,
    canonicalQuery: canonicalQuery, layerNames: layerNames, search: search, describe: describe };
  if (typeof module !== "undefined") module.exports = api;
  if (typeof document !== "undefined") start();
})(typeof ModelAtlas !== "undefined" ? ModelAtlas : require("./common.js"));
