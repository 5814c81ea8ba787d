/* model-atlas: what every page shares. Loaded first on every page, as a classic script (a
   module script does not load from file://), and by Node for the unit tests. It defines
   one global, ModelAtlas, and on a page it starts the two behaviours every page may have:
   the keyboard shortcuts of the footer and the thumbnails that load near the viewport.
   All text is set with textContent, never innerHTML. */
var ModelAtlas = (function () {
  "use strict";

  // What a missing number (null, NaN, ±Infinity) reads as, in Python's pages as here.
  var DASH = "\u2013";
  // Significant digits of every number the site shows (docs/FRONTEND.md, "Numbers").
  var DIGITS = 4;

  /* The site's one number format (pipeline/site/numbers.py is its Python twin; both are
     tested against tests/data/number_format.json): DIGITS significant digits, rounded half
     away from zero; plain notation while the rounded exponent is in [-4, DIGITS), else
     "1.2e10" / "-1e-12"; trailing zeros dropped; no "-0". */
  function formatNumber(value) {
    if (value === null || value === undefined) return DASH;
    var x = Number(value);
    if (!isFinite(x)) return DASH;
    if (x === 0) return "0";
    // toExponential rounds the exact value half away from zero: "-1.235e+3".
    var parts = Math.abs(x).toExponential(DIGITS - 1).split("e");
    var digits = parts[0].replace(".", ""), exponent = parseInt(parts[1], 10);
    return (x < 0 ? "-" : "") + layOut(digits, exponent);
  }

  // A number that shows its sign either way: "+" before a positive value, as attribution.
  function formatSigned(value) {
    var text = formatNumber(value);
    return Number(value) > 0 && text !== DASH ? "+" + text : text;
  }

  // DIGITS decimal digits "1235" and the exponent of the first -> "1235", "0.0001235", "1.235e4".
  function layOut(digits, exponent) {
    if (exponent < -4 || exponent >= DIGITS) {
      var mantissa = trimFraction(digits.charAt(0), digits.slice(1));
      return mantissa + "e" + exponent;
    }
    if (exponent < 0) return trimFraction("0", new Array(-exponent).join("0") + digits);
    return trimFraction(digits.slice(0, exponent + 1), digits.slice(exponent + 1));
  }

  function trimFraction(whole, fraction) {
    fraction = fraction.replace(/0+$/, "");
    return fraction ? whole + "." + fraction : whole;
  }

  // An element with text (set as text, never parsed) and attributes.
  function el(tag, text, attrs) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (attrs) Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  // The JSON of a <script type="application/json" id=...> (pages embed their data: no
  // fetch from file://), or null when the page has none.
  function readJson(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  // A file name as a URL path segment (the site's file names are the raw names).
  function urlSegment(name) { return encodeURIComponent(name); }

  // Up/down/left/right moves of a grid cursor, as [row step, column step].
  var ARROWS = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };

  // The footer's keys: each page lists them as links with data-shortcut; a key opens its
  // link (one to "#id" on the page focuses that element: "/", the search box) unless it
  // is typed into a field or moves a Building Blocks or atlas cursor (Tab or Escape leaves
  // a map, and the page's keys work again).
  function shortcutTarget(event, links) {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return null;
    var target = event.target;
    if (target && target.closest && target.closest("input, select, textarea, [contenteditable], .bb-views, #atlas-map")) return null;
    for (var i = 0; i < links.length; i++) {
      if (links[i].getAttribute("data-shortcut") === event.key) return links[i];
    }
    return null;
  }

  function setupShortcuts(doc) {
    doc.addEventListener("keydown", function (event) {
      var link = shortcutTarget(event, doc.querySelectorAll("a[data-shortcut]"));
      if (!link) return;
      event.preventDefault();
      var anchor = link.getAttribute("href");
      var field = anchor.charAt(0) === "#" ? doc.getElementById(anchor.slice(1)) : null;
      if (field) field.focus();
      else window.location.href = link.href;
    });
  }

  // Thumbnails with data-src get their src only near the viewport (a layer of 1,024
  // channels stays light).
  function deferImages(doc) {
    var images = Array.prototype.slice.call(doc.querySelectorAll("img[data-src]"));
    function show(img) { if (!img.getAttribute("src")) img.setAttribute("src", img.getAttribute("data-src")); }
    if (!images.length) return;
    if (!("IntersectionObserver" in window)) { images.forEach(show); return; }
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting) { show(entry.target); observer.unobserve(entry.target); }
      });
    }, { rootMargin: "400px 0px" });
    images.forEach(function (img) { observer.observe(img); });
  }

  return {
    DASH: DASH,
    DIGITS: DIGITS,
    ARROWS: ARROWS,
    formatNumber: formatNumber,
    formatSigned: formatSigned,
    el: el,
    readJson: readJson,
    urlSegment: urlSegment,
    shortcutTarget: shortcutTarget,
    setupShortcuts: setupShortcuts,
    deferImages: deferImages
  };
})();

if (typeof module !== "undefined") module.exports = ModelAtlas;
if (typeof document !== "undefined") {
  ModelAtlas.setupShortcuts(document);
  ModelAtlas.deferImages(document);
}
