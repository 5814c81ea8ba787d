/* A layer page (needs #channels): reorder the channel tiles by channel, mean activation or
   attribution. Classic script after common.js. */
(function () {
  "use strict";

  // Compare two tiles' values for `key`: by channel, or largest first with missing values
  // (NaN) last and ties by channel.
  function compareBy(key, va, vb, ca, cb) {
    if (key === "channel") return ca - cb;
    if (isNaN(va) !== isNaN(vb)) return isNaN(va) ? 1 : -1;
    if (!isNaN(va) && va !== vb) return vb - va;
    return ca - cb;
  }

  // A tile's data-<key> as a number; an empty attribute (no value in this run) is NaN.
  function value(li, key) {
    var raw = li.getAttribute("data-" + key);
    return raw === "" || raw === null ? NaN : parseFloat(raw);
  }

  function start() {
    var grid = document.getElementById("channels");
    if (!grid) return;
    var buttons = document.querySelectorAll(".sorter button");
    var items = Array.prototype.slice.call(grid.children);
    function sortBy(key) {
      var sorted = items.slice().sort(function (a, b) {
        return compareBy(key, value(a, key), value(b, key), value(a, "channel"), value(b, "channel"));
      });
      var fragment = document.createDocumentFragment();
      sorted.forEach(function (li) { fragment.appendChild(li); });
      grid.appendChild(fragment);
      Array.prototype.forEach.call(buttons, function (b) {
        b.setAttribute("aria-pressed", b.getAttribute("data-sort") === key ? "true" : "false");
      });
    }
    Array.prototype.forEach.call(buttons, function (b) {
      b.addEventListener("click", function () { sortBy(b.getAttribute("data-sort")); });
    });
  }

  if (typeof module !== "undefined") module.exports = { compareBy: compareBy };
  if (typeof document !== "undefined") start();
})();
