/* model-atlas site behaviour: search (index), sorting (layer pages), semantic-dictionary
   hover (image pages). Classic script, no modules or fetch, so pages work from file://.
   Data comes from <script type="application/json"> elements; all text is set with
   textContent, never innerHTML. */
(function () {
  "use strict";

  function readJson(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  function el(tag, text, attrs) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (attrs) Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  function fmt(v) {
    if (v === null || v === undefined || isNaN(v)) return "–";
    return Number(v).toPrecision(3).replace(/\.?0+(e|$)/, "$1");
  }

  // Path segments as percent-encoded URL parts (the site's file names are the raw names).
  function seg(s) { return encodeURIComponent(s); }

  /* ---- index: jump to a layer, a channel ("layer:channel"), a class or an image ---- */
  function setupSearch() {
    var data = readJson("search-data"), form = document.getElementById("search");
    if (!data || !form) return;
    var box = document.getElementById("search-box"), list = document.getElementById("search-results");
    var layers = {};
    data.layers.forEach(function (l) { layers[l[0]] = l[1]; });

    function layerName(q) {
      if (Object.prototype.hasOwnProperty.call(layers, q)) return q;
      if (Object.prototype.hasOwnProperty.call(data.aliases, q)) return data.aliases[q];
      return null;
    }

    function matches(query) {
      var q = query.trim(), out = [];
      if (!q) return out;
      var m = q.match(/^(.+?)\s*[:\s]\s*(\d+)$/);
      if (m && layerName(m[1]) !== null) {
        var name = layerName(m[1]), c = parseInt(m[2], 10);
        if (c < layers[name]) out.push({ text: name + ":" + c, kind: "channel", url: "channels/" + seg(name) + "/" + c + ".html" });
        else out.push({ text: name + " has channels 0-" + (layers[name] - 1), kind: "no such channel", url: null });
      }
      var lower = q.toLowerCase();
      data.layers.forEach(function (l) {
        if (l[0].toLowerCase().indexOf(lower) === 0 || layerName(q) === l[0])
          out.push({ text: l[0], kind: "layer, " + l[1] + " channels", url: "layers/" + seg(l[0]) + ".html" });
      });
      var exact = [], wordStart = [], partial = [];   // best matches first
      data.classes.forEach(function (k) {
        var name = k[0].toLowerCase(), at = name.indexOf(lower);
        if (name === lower) exact.push(k);
        else if (at === 0 || (at > 0 && /[\s_-]/.test(name.charAt(at - 1)))) wordStart.push(k);
        else if (at > 0) partial.push(k);
      });
      exact.concat(wordStart, partial).slice(0, 20).forEach(function (k) {
        out.push({ text: k[0], kind: k[1] ? "class" : "class, never predicted in this dataset", url: k[1] });
      });
      data.images.forEach(function (i) {
        if (i[0].toLowerCase().indexOf(lower) >= 0) out.push({ text: i[0], kind: "image", url: i[1] });
      });
      return out.slice(0, 30);
    }

    function show() {
      while (list.firstChild) list.removeChild(list.firstChild);
      var found = matches(box.value);
      if (box.value.trim() && !found.length) list.appendChild(el("li", "Nothing matches."));
      found.forEach(function (f) {
        var li = el("li");
        li.appendChild(f.url ? el("a", f.text, { href: f.url }) : el("span", f.text));
        li.appendChild(el("small", f.kind));
        list.appendChild(li);
      });
    }

    box.addEventListener("input", show);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var first = matches(box.value).filter(function (f) { return f.url; })[0];
      if (first) window.location.href = first.url;
      else show();
    });
  }

  /* ---- layer page: reorder the channel tiles ---- */
  function setupSorting() {
    var grid = document.getElementById("channels");
    if (!grid) return;
    var buttons = document.querySelectorAll(".sorter button");
    var items = Array.prototype.slice.call(grid.children);
    function value(li, key) {
      var raw = li.getAttribute("data-" + key);
      return raw === "" || raw === null ? NaN : parseFloat(raw);
    }
    function sortBy(key) {
      var sorted = items.slice().sort(function (a, b) {
        var ca = value(a, "channel"), cb = value(b, "channel");
        if (key === "channel") return ca - cb;
        var va = value(a, key), vb = value(b, key);
        if (isNaN(va) !== isNaN(vb)) return isNaN(va) ? 1 : -1;  // missing values last
        if (!isNaN(va) && va !== vb) return vb - va;              // largest first
        return ca - cb;
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

  /* ---- image page: the semantic dictionary under the pointer ---- */
  function setupDictionaries() {
    Array.prototype.forEach.call(document.querySelectorAll(".dictionary"), function (box) {
      var d = readJson(box.getAttribute("data-dictionary"));
      var target = box.querySelector(".hover-target"), cursor = box.querySelector(".cursor");
      var panel = box.querySelector(".dictionary-panel");
      if (!d || !target) return;
      var shown = -1;
      function render(y, x) {
        var index = y * d.w + x;
        if (index === shown) return;
        shown = index;
        while (panel.firstChild) panel.removeChild(panel.firstChild);
        panel.appendChild(el("p", "position (" + y + ", " + x + "), magnitude " + fmt(d.magnitude[index])));
        var list = el("ol");
        for (var i = 0; i < d.k; i++) {
          var c = d.channels[index * d.k + i], key = String(c), li = el("li", null, { "class": "top-channel" });
          var icon = d.icons[key];
          if (icon) li.appendChild(el("img", null, { src: icon, width: "48", height: "48", alt: "channel " + c, "class": "thumb" }));
          li.appendChild(d.pages[key] ? el("a", d.layer + ":" + c, { href: d.pages[key] }) : el("span", d.layer + ":" + c));
          li.appendChild(el("span", fmt(d.values[index * d.k + i]), { "class": "value" }));
          list.appendChild(li);
        }
        panel.appendChild(list);
        var rect = target.getBoundingClientRect();
        cursor.style.left = (x * rect.width / d.w) + "px";
        cursor.style.top = (y * rect.height / d.h) + "px";
        cursor.style.width = (rect.width / d.w) + "px";
        cursor.style.height = (rect.height / d.h) + "px";
        cursor.hidden = false;
      }
      target.addEventListener("mousemove", function (event) {
        var rect = target.getBoundingClientRect();
        var x = Math.min(d.w - 1, Math.max(0, Math.floor((event.clientX - rect.left) / rect.width * d.w)));
        var y = Math.min(d.h - 1, Math.max(0, Math.floor((event.clientY - rect.top) / rect.height * d.h)));
        render(y, x);
      });
    });
  }

  /* ---- layer grids: load thumbnails only near the viewport (a 1,024-channel layer stays light) ---- */
  function setupDeferredImages() {
    var images = Array.prototype.slice.call(document.querySelectorAll("img[data-src]"));
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

  setupDeferredImages();
  setupSearch();
  setupSorting();
  setupDictionaries();
})();
