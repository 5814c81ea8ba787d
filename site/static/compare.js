/* A comparison site's layer-pair page (needs #compare-rows): sort the matched units by
   correlation (largest first) or by either side's channel, with the sorter's buttons
   (keyboard: they are buttons; aria-pressed says which order is shown). Classic script
   after common.js. */
(function () {
  "use strict";

  // Compare two rows' values for `key`: a channel ascending, or the correlation largest
  // first with missing ones (NaN) last; ties by the first run's channel.
  function compareRows(key, ra, rb) {
    if (key !== "corr") return ra[key] - rb[key] || ra.a - rb.a;
    if (isNaN(ra.corr) !== isNaN(rb.corr)) return isNaN(ra.corr) ? 1 : -1;
    if (!isNaN(ra.corr) && ra.corr !== rb.corr) return rb.corr - ra.corr;
    return ra.a - rb.a;
  }

  // A row's sort values from its data-corr, data-a and data-b (empty: NaN).
  function rowValues(tr) {
    function number(name) {
      var raw = tr.getAttribute("data-" + name);
      return raw === "" || raw === null ? NaN : parseFloat(raw);
    }
    return { corr: number("corr"), a: number("a"), b: number("b"), node: tr };
  }

  function start() {
    var body = document.getElementById("compare-rows");
    if (!body) return;
    var buttons = document.querySelectorAll(".sorter button");
    var rows = Array.prototype.map.call(body.children, rowValues);
    function sortBy(key) {
      var fragment = document.createDocumentFragment();
      rows.slice().sort(function (x, y) { return compareRows(key, x, y); })
        .forEach(function (row) { fragment.appendChild(row.node); });
      body.appendChild(fragment);
      Array.prototype.forEach.call(buttons, function (b) {
        b.setAttribute("aria-pressed", b.getAttribute("data-sort") === key ? "true" : "false");
      });
    }
    Array.prototype.forEach.call(buttons, function (b) {
      b.addEventListener("click", function () { sortBy(b.getAttribute("data-sort")); });
    });
  }

  if (typeof module !== "undefined") module.exports = { compareRows: compareRows };
  if (typeof document !== "undefined") start();
})();
