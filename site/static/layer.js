/* A layer page (needs #channels): reorder the channel tiles by channel, mean activation,
   attribution or a trust score (each tile's data-<key>), show the sorted value under each
   tile, and show only the channels a filter picks (#channel-filter: each tile's
   data-filters lists the filters it passes). On a layer rendered exactly, a toggle
   (.view-toggle) shows each channel's filter in its tile instead of its visualization.
   Classic script after common.js. */
(function (MA) {
  "use strict";

  // Scores that are shares (0-1), shown as percentages, as the scorecard shows them.
  var SHARES = ["label-precision", "fires-images", "fires-positions"];

  // Compare two tiles' values for `key`: by channel, or largest first with missing values
  // (NaN) last and ties by channel.
  function compareBy(key, va, vb, ca, cb) {
    if (key === "channel") return ca - cb;
    if (isNaN(va) !== isNaN(vb)) return isNaN(va) ? 1 : -1;
    if (!isNaN(va) && va !== vb) return vb - va;
    return ca - cb;
  }

  // The text under a tile once the grid is sorted by `key`: the tile's value `x` in the site's
  // number format (a share as a percentage, the path flag as "flagged"); "" for the
  // channel order and for a missing value.
  function sortedText(key, x) {
    if (key === "channel" || isNaN(x)) return "";
    if (key === "path-flag") return x ? "flagged" : "";
    if (SHARES.indexOf(key) >= 0) return MA.formatNumber(100 * x) + " %";
    return MA.formatNumber(x);
  }

  // Whether a tile whose data-filters is `tokens` ("clear weak") passes the filter `token`
  // ("" passes every tile).
  function passes(tokens, token) {
    if (!token) return true;
    return (tokens || "").split(/\s+/).indexOf(token) >= 0;
  }

  // What the status line says after filtering.
  function countText(shown, total) {
    return shown === total ? "" : shown + " of " + total + " channels shown";
  }

  // A tile's data-<key> as a number; an empty attribute (no value in this run) is NaN.
  function value(li, key) {
    var raw = li.getAttribute("data-" + key);
    return raw === "" || raw === null ? NaN : parseFloat(raw);
  }

  function sorter(grid, items, buttons) {
    return function sortBy(key) {
      var sorted = items.slice().sort(function (a, b) {
        return compareBy(key, value(a, key), value(b, key), value(a, "channel"), value(b, "channel"));
      });
      var fragment = document.createDocumentFragment();
      sorted.forEach(function (li) {
        var shown = li.querySelector(".sort-value");
        if (shown) shown.textContent = sortedText(key, value(li, key));
        fragment.appendChild(li);
      });
      grid.appendChild(fragment);
      Array.prototype.forEach.call(buttons, function (b) {
        b.setAttribute("aria-pressed", b.getAttribute("data-sort") === key ? "true" : "false");
      });
    };
  }

  function setupFilter(items) {
    var select = document.getElementById("channel-filter");
    var status = document.getElementById("channel-count");
    if (!select) return;
    select.addEventListener("change", function () {
      var shown = 0;
      items.forEach(function (li) {
        var pass = passes(li.getAttribute("data-filters"), select.value);
        li.hidden = !pass;
        if (pass) shown += 1;
      });
      if (status) status.textContent = countText(shown, items.length);
    });
  }

  // The grid's class for the tiles' view `view` ("visualization" or "filter"): "show-filters"
  // for the filters, "" for the visualizations (the default, and any unknown view).
  function viewClass(view) {
    return view === "filter" ? "show-filters" : "";
  }

  function setupView(grid) {
    var buttons = document.querySelectorAll(".view-toggle button");
    Array.prototype.forEach.call(buttons, function (b) {
      b.addEventListener("click", function () {
        grid.classList.toggle("show-filters", viewClass(b.getAttribute("data-view")) === "show-filters");
        Array.prototype.forEach.call(buttons, function (o) {
          o.setAttribute("aria-pressed", o === b ? "true" : "false");
        });
      });
    });
  }

  function start() {
    var grid = document.getElementById("channels");
    if (!grid) return;
    var buttons = document.querySelectorAll(".sorter button");
    var items = Array.prototype.slice.call(grid.children);
    var sortBy = sorter(grid, items, buttons);
    Array.prototype.forEach.call(buttons, function (b) {
      b.addEventListener("click", function () { sortBy(b.getAttribute("data-sort")); });
    });
    setupFilter(items);
    setupView(grid);
  }

  if (typeof module !== "undefined") {
    module.exports = { compareBy: compareBy, sortedText: sortedText, passes: passes, countText: countText,
                       viewClass: viewClass };
  }
  if (typeof document !== "undefined") start();
})(typeof ModelAtlas !== "undefined" ? ModelAtlas : require("./common.js"));
