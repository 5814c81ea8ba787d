/* model-atlas site behaviour: search (index), sorting (layer pages), the linked Building
   Blocks views (image pages). Classic script, no modules or fetch, so pages work from file://.
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

  /* ---- image page: the Building Blocks, every view of every layer linked ----
     One cursor (a layer and a cell) is shared by all views: the photo, the semantic
     dictionary, the activation grid, the attribution map and the flows. Attribution is
     shown for one class, or for the difference of two (exact: attribution is linear in
     the logit). One diverging scale everywhere: orange for, purple against, and a bar
     that goes up (right) for and down (left) against from a zero line. */
  var FOR = [179, 88, 6], AGAINST = [84, 39, 136];

  function diverging(v, scale) {
    if (v === null || isNaN(v) || !(scale > 0)) return "rgb(255,255,255)";
    var t = Math.min(1, Math.abs(v) / scale), c = v >= 0 ? FOR : AGAINST;
    return "rgb(" + c.map(function (x) { return Math.round(255 + (x - 255) * t); }).join(",") + ")";
  }

  function signed(v) { return (v > 0 ? "+" : "") + fmt(v); }

  function setupBlocks() {
    var data = readJson("blocks-data");
    if (!data) return;
    var sections = Array.prototype.slice.call(document.querySelectorAll(".bb-layer"));
    var panel = document.getElementById("bb-panel"), live = document.getElementById("bb-live");
    var explain = document.getElementById("explain-class"), minus = document.getElementById("compare-class");
    var state = { t: 0, minus: null, layer: null, cell: null, pinned: false };
    var liveTimer = null;

    // The chosen class's values of a per-class array (rows: classes), or the difference.
    function chosen(rows) {
      if (!rows) return null;
      var a = rows[state.t];
      if (state.minus === null) return a;
      var b = rows[state.minus];
      if (!Array.isArray(a)) return a - b;
      return a.map(function (v, i) { return Array.isArray(v) ? v.map(function (w, j) { return w - b[i][j]; }) : v - b[i]; });
    }
    function chosenColumn(matrix) {   // [G][T] -> [G]
      if (!matrix) return null;
      return matrix.map(function (row) { return state.minus === null ? row[state.t] : row[state.t] - row[state.minus]; });
    }
    function className() {
      var a = data.classes[state.t].name;
      return state.minus === null ? a : a + " minus " + data.classes[state.minus].name;
    }
    function maxAbs(values) {
      var m = 0;
      values.forEach(function (v) { if (v !== null && Math.abs(v) > m) m = Math.abs(v); });
      return m;
    }
    function rowCol(layer, cell) { return "(" + Math.floor(cell / layer.gw) + ", " + (cell % layer.gw) + ")"; }

    /* -- the views' cells -- */
    function makeCells(box, count, make) {
      for (var i = 0; i < count; i++) {
        var cell = make ? make(i) : el("span");
        cell.classList.add("cell");
        cell.setAttribute("data-cell", String(i));
        box.appendChild(cell);
      }
    }
    sections.forEach(function (section, li) {
      var layer = data.layers[li], n = layer.gh * layer.gw, d = layer.dictionary;
      section.querySelectorAll(".view").forEach(function (view) {
        var box = view.querySelector(".cells"), kind = view.getAttribute("data-view");
        if (kind === "photo") makeCells(box, n);
        if (kind === "dictionary" && d) {
          var top = maxAbs(d.magnitude);
          makeCells(box, n, function (i) {
            var c = d.channels[i * d.k], icon = layer.icons[String(c)], span = el("span");
            var scale = top > 0 ? Math.max(0.2, d.magnitude[i] / top) : 1;
            if (icon) span.appendChild(el("img", null, { src: icon, alt: "", style: "width:" + (scale * 100).toFixed(1) + "%" }));
            else span.appendChild(el("b", c, { style: "opacity:" + scale.toFixed(2) }));
            return span;
          });
        }
        if (kind === "grid") {
          var mags = layer.grid_magnitude || [], gtop = maxAbs(mags);
          box.querySelectorAll("img").forEach(function (img, i) {
            img.classList.add("cell");
            if (gtop > 0) img.style.transform = "scale(" + Math.max(0.25, mags[i] / gtop).toFixed(3) + ")";
          });
        }
        if (kind === "attribution") makeCells(box, n, function () { var s = el("span"); s.appendChild(el("i", null, { "class": "bar" })); return s; });
        if (kind === "flows" && layer.flows) makeCells(box, layer.flows.gh * layer.flows.gw);
        box.addEventListener("mouseover", function (event) {
          var cell = event.target.closest(".cell");
          if (!cell || state.pinned) return;
          var index = parseInt(cell.getAttribute("data-cell"), 10);
          if (kind === "flows") setCursor(li - 1, index); else setCursor(li, index);
        });
        box.addEventListener("click", function (event) {
          var cell = event.target.closest(".cell");
          if (!cell) return;
          var index = parseInt(cell.getAttribute("data-cell"), 10), target = kind === "flows" ? li - 1 : li;
          if (state.pinned && state.layer === target && state.cell === index) { state.pinned = false; render(); return; }
          state.pinned = false;
          setCursor(target, index);
          state.pinned = true;
          render();
        });
      });
      var views = section.querySelector(".bb-views");
      views.addEventListener("focus", function () {
        if (state.layer !== li && !state.pinned) setCursor(li, Math.floor(layer.gh / 2) * layer.gw + Math.floor(layer.gw / 2));
      });
      views.addEventListener("keydown", function (event) {
        var moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
        var cell = state.layer === li && state.cell !== null ? state.cell : 0;
        var y = Math.floor(cell / layer.gw), x = cell % layer.gw;
        if (moves[event.key]) {
          event.preventDefault();
          y = Math.min(layer.gh - 1, Math.max(0, y + moves[event.key][0]));
          x = Math.min(layer.gw - 1, Math.max(0, x + moves[event.key][1]));
          var wasPinned = state.pinned;
          state.pinned = false;
          setCursor(li, y * layer.gw + x);
          state.pinned = wasPinned;
          render();
        } else if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          if (state.layer !== li) setCursor(li, cell);
          state.pinned = !state.pinned;
          render();
        } else if (event.key === "Escape") {
          state.pinned = false;
          render();
        }
      });
    });

    function setCursor(li, cell) {
      if (state.pinned || li < 0) return;
      state.layer = li;
      state.cell = cell;
      render();
    }

    /* -- drawing -- */
    function paintAttribution(section, layer) {
      var values = chosen(layer.spatial);
      if (!values) return;
      var scale = maxAbs(values), range = section.querySelector(".view[data-view=attribution] .range");
      if (range) range.textContent = "±" + fmt(scale);
      section.querySelectorAll(".view[data-view=attribution] .cell").forEach(function (cell, i) {
        var v = values[i], bar = cell.querySelector(".bar"), t = scale > 0 ? Math.min(1, Math.abs(v) / scale) : 0;
        cell.style.background = diverging(v, scale * 1.5);
        cell.setAttribute("data-value", String(v));
        cell.title = "cell " + rowCol(layer, i) + ": " + signed(v);
        bar.style.height = (t * 50).toFixed(1) + "%";
        bar.style.top = v >= 0 ? (50 - t * 50).toFixed(1) + "%" : "50%";
        bar.style.background = diverging(v, Math.abs(v));   // the full colour: the bar's length is the size
      });
      var totals = chosen(layer.total);
      var sentence = section.querySelector(".layer-sentence");
      if (sentence && totals !== null) {
        var pos = values.filter(function (v) { return v > 0; }).length;
        sentence.textContent = "Sum over this layer's cells for " + className() + ": " + signed(totals) + " (" + pos + " of " + values.length + " cells for, the others against).";
      }
    }

    function paintChannels(section, layer) {
      var box = section.querySelector(".channel-bars"), values = chosen(layer.channel);
      if (!box || !values) return;
      while (box.firstChild) box.removeChild(box.firstChild);
      var order = values.map(function (v, c) { return c; });
      var best = order.slice().sort(function (a, b) { return values[b] - values[a] || a - b; });
      var parts = [["Channels for " + className(), best.slice(0, 6).filter(function (c) { return values[c] > 0; })],
                   ["Channels against", best.slice().reverse().slice(0, 6).filter(function (c) { return values[c] < 0; })]];
      var scale = maxAbs(values);
      parts.forEach(function (part) {
        var wrap = el("div"), list = el("ol", null, { "class": "diverging-list" });
        wrap.appendChild(el("h3", part[0]));
        if (!part[1].length) list.appendChild(el("li", "none"));
        part[1].forEach(function (c) {
          var li = el("li", null, { "data-channel": String(c) }), key = String(c);
          var label = layer.pages[key] ? el("a", null, { href: layer.pages[key] }) : el("span");
          if (layer.icons[key]) label.appendChild(el("img", null, { src: layer.icons[key], width: "32", height: "32", alt: "", "class": "thumb" }));
          label.appendChild(el("span", layer.name + ":" + c));
          li.appendChild(label);
          var axis = el("span", null, { "class": "axis" }), t = scale > 0 ? Math.abs(values[c]) / scale : 0;
          axis.appendChild(el("i", null, { "class": values[c] >= 0 ? "bar for" : "bar against", style: "width:" + (t * 50).toFixed(1) + "%" }));
          li.appendChild(axis);
          li.appendChild(el("span", signed(values[c]), { "class": "value" }));
          list.appendChild(li);
        });
        wrap.appendChild(list);
        box.appendChild(wrap);
      });
    }

    function paintFlows(section, li) {
      var layer = data.layers[li], box = section.querySelector(".view[data-view=flows] .cells");
      if (!box || !layer.flows) return;
      var rows = chosen(layer.flows.cells), values;
      if (state.layer === li && state.cell !== null) values = rows[state.cell];
      else values = rows[0].map(function (v, p) { return rows.reduce(function (s, r) { return s + r[p]; }, 0); });
      var scale = maxAbs(values);
      box.querySelectorAll(".cell").forEach(function (cell, p) {
        cell.style.background = diverging(values[p], scale);
        cell.setAttribute("data-value", String(values[p]));
      });
      var caption = section.querySelector(".view[data-view=flows] figcaption");
      caption.textContent = "From " + layer.flows.source + (state.layer === li && state.cell !== null ? " into " + rowCol(layer, state.cell) : ", all cells");
    }

    function paintGroupFlows() {
      var svg = document.getElementById("group-flows");
      if (!svg) return;
      while (svg.lastChild && svg.lastChild.tagName !== "title") svg.removeChild(svg.lastChild);
      var columns = data.layers.filter(function (l) { return l.groups; });
      if (!columns.length) return;
      var NS = "http://www.w3.org/2000/svg", width = Math.max(600, svg.parentNode.clientWidth - 8);
      var groupsPer = Math.max.apply(null, columns.map(function (l) { return l.groups.colours.length; }));
      var rowH = 46, TOP = 34, height = groupsPer * rowH + TOP + 10, colW = (width - 160) / columns.length;
      svg.setAttribute("viewBox", "0 0 " + width + " " + height);
      svg.setAttribute("width", String(width));
      svg.setAttribute("height", String(height));
      // A node: its colour as a stripe, its feature visualization, its number. Flows leave
      // a node on its right (x + NODE_W) and enter it on its left (x).
      var NODE_W = 44;
      function node(x, y, colour, label, icon) {
        var g = document.createElementNS(NS, "g");
        var rect = document.createElementNS(NS, "rect");
        [["x", x], ["y", y], ["width", icon ? 8 : 18], ["height", rowH - 14], ["fill", colour]].forEach(function (a) { rect.setAttribute(a[0], a[1]); });
        g.appendChild(rect);
        if (icon) {
          var image = document.createElementNS(NS, "image");
          [["x", x + 10], ["y", y], ["width", rowH - 14], ["height", rowH - 14], ["href", icon]].forEach(function (a) { image.setAttribute(a[0], a[1]); });
          g.appendChild(image);
        }
        var text = document.createElementNS(NS, "text");
        // Beside a plain node; above an icon (flows leave from the icon's right side).
        text.setAttribute("x", icon ? x + 10 : x + 22);
        text.setAttribute("y", icon ? y - 2 : y + rowH - 16);
        if (icon) text.setAttribute("class", "small");
        text.textContent = label;
        g.appendChild(text);
        svg.appendChild(g);
      }
      var links = [], top = 0;
      columns.forEach(function (layer, ci) {
        var x = 10 + ci * colW;
        var head = document.createElementNS(NS, "text");
        head.setAttribute("x", x); head.setAttribute("y", 14); head.setAttribute("class", "column"); head.textContent = layer.name;
        svg.appendChild(head);
        layer.groups.colours.forEach(function (colour, g) { node(x, TOP + g * rowH, colour, "group " + (g + 1), (layer.groups.icons || [])[g]); });
        if (ci > 0 && layer.flows && layer.flows.groups && layer.flows.source === columns[ci - 1].name) {
          chosen(layer.flows.groups).forEach(function (row, g2) {
            row.forEach(function (v, g1) { links.push({ pair: ci - 1, from: [ci - 1, g1], to: [ci, g2], v: v }); });
          });
        }
      });
      var last = columns.length - 1, classX = 10 + columns.length * colW;
      chosenColumn(columns[last].groups.attribution).forEach(function (v, g) {
        links.push({ pair: last, from: [last, g], to: [columns.length, 0], v: v });
      });
      var label = document.createElementNS(NS, "text");
      label.setAttribute("x", classX - 4); label.setAttribute("y", 14); label.setAttribute("class", "column"); label.textContent = "class";
      svg.appendChild(label);
      node(classX - 4, TOP + (groupsPer - 1) * rowH / 2, "#333", className());
      links.forEach(function (l) { if (Math.abs(l.v) > top) top = Math.abs(l.v); });
      links.forEach(function (l) {
        var x1 = 10 + l.from[0] * colW + NODE_W, y1 = TOP + l.from[1] * rowH + (rowH - 14) / 2;
        var x2 = l.to[0] === columns.length ? classX - 4 : 10 + l.to[0] * colW;
        var y2 = l.to[0] === columns.length ? TOP + (groupsPer - 1) * rowH / 2 + (rowH - 14) / 2 : TOP + l.to[1] * rowH + (rowH - 14) / 2;
        // Sign by side as well as colour: flows for enter their node's top half, flows against its bottom half.
        y2 += l.v >= 0 ? -6 : 6;
        var path = document.createElementNS(NS, "path"), mid = (x1 + x2) / 2;
        path.setAttribute("d", "M" + x1 + "," + y1 + " C" + mid + "," + y1 + " " + mid + "," + y2 + " " + x2 + "," + y2);
        path.setAttribute("stroke", diverging(l.v, Math.abs(l.v) || 1));
        path.setAttribute("stroke-width", (top > 0 ? Math.max(0.5, 16 * Math.abs(l.v) / top) : 0.5).toFixed(2));
        path.setAttribute("class", "flow");
        path.setAttribute("data-pair", String(l.pair));
        path.setAttribute("data-value", String(l.v));
        var title = document.createElementNS(NS, "title");
        var to = l.to[0] === columns.length ? className() : "group " + (l.to[1] + 1) + " of " + columns[l.to[0]].name;
        title.textContent = "group " + (l.from[1] + 1) + " of " + columns[l.from[0]].name + " to " + to + ": " + signed(l.v);
        path.appendChild(title);
        svg.insertBefore(path, svg.querySelector("g"));
      });
      document.querySelectorAll(".group-value").forEach(function (span) {
        var layer = data.layers[parseInt(span.getAttribute("data-layer"), 10)];
        var values = layer && layer.groups ? chosenColumn(layer.groups.attribution) : null;
        if (values) span.textContent = signed(values[parseInt(span.getAttribute("data-group"), 10)]) + " for " + className();
      });
    }

    function paintPanel() {
      while (panel.firstChild) panel.removeChild(panel.firstChild);
      if (state.layer === null) { panel.appendChild(el("p", "Point at a cell of any view.", { "class": "hint" })); return; }
      var layer = data.layers[state.layer], d = layer.dictionary, i = state.cell;
      var head = el("p", null, { "class": "panel-head" });
      head.appendChild(el("b", layer.name + " cell " + rowCol(layer, i)));
      head.appendChild(el("span", state.pinned ? "pinned (Esc to unpin)" : "click to pin", { "class": state.pinned ? "badge pinned" : "badge" }));
      panel.appendChild(head);
      var values = chosen(layer.spatial);
      if (values) panel.appendChild(el("p", "Attribution to " + className() + " here: " + signed(values[i])));
      if (d) {
        var list = el("ol", null, { "class": "panel-channels" });
        for (var k = 0; k < d.k; k++) {
          var c = d.channels[i * d.k + k], key = String(c), li = el("li", null, { "data-channel": key });
          if (layer.icons[key]) li.appendChild(el("img", null, { src: layer.icons[key], width: "64", height: "64", alt: "feature visualization of " + layer.name + " channel " + c }));
          else li.appendChild(el("span", key, { "class": "thumb none" }));
          li.appendChild(layer.pages[key] ? el("a", layer.name + ":" + c, { href: layer.pages[key] }) : el("span", layer.name + ":" + c));
          li.appendChild(el("span", fmt(d.values[i * d.k + k]), { "class": "value" }));
          list.appendChild(li);
        }
        panel.appendChild(el("p", "Strongest channels (mean activation in the cell):", { "class": "meta" }));
        panel.appendChild(list);
      }
    }

    function highlight() {
      document.querySelectorAll(".bb .cell.on").forEach(function (c) { c.classList.remove("on"); });
      if (state.layer === null) return;
      var selector = ".cell[data-cell='" + state.cell + "']";
      var section = sections[state.layer];
      section.querySelectorAll(".view:not([data-view=flows]) " + selector).forEach(function (c) { c.classList.add("on"); });
      var next = sections[state.layer + 1];   // this layer's cells seen from the next layer
      if (next) next.querySelectorAll(".view[data-view=flows] " + selector).forEach(function (c) { c.classList.add("on"); });
    }

    function announce() {
      clearTimeout(liveTimer);
      liveTimer = setTimeout(function () {
        if (state.layer === null) return;
        var layer = data.layers[state.layer], d = layer.dictionary, values = chosen(layer.spatial), i = state.cell;
        var text = layer.name + " cell " + rowCol(layer, i) + (state.pinned ? ", pinned" : "");
        if (d) text += ": top channel " + d.channels[i * d.k] + " (" + fmt(d.values[i * d.k]) + ")";
        if (values) text += "; attribution to " + className() + " " + signed(values[i]);
        live.textContent = text;
      }, 400);
    }

    function render() {
      sections.forEach(function (section, li) { paintFlows(section, li); });
      highlight();
      paintPanel();
      announce();
    }

    function renderClass() {
      state.t = parseInt(explain.value, 10);
      state.minus = minus.value === "" || parseInt(minus.value, 10) === state.t ? null : parseInt(minus.value, 10);
      var k = data.classes[state.t], sentence = document.getElementById("explain-sentence");
      var classLink = document.getElementById("explain-class-page");
      if (classLink) {
        classLink.hidden = !k.page;
        if (k.page) { classLink.setAttribute("href", k.page); classLink.textContent = k.name + ": class page"; }
      }
      if (state.minus === null) {
        sentence.textContent = "Explaining " + k.name + " (logit " + fmt(k.logit) + ", probability " + fmt(k.probability) +
          "). A layer's sum is gradient × activation: a linear estimate of how far the logit would move if that layer's activations were zero. It is not the logit, and it can be negative for the predicted class when most of a layer pulls against it while a few cells carry the evidence.";
      } else {
        var b = data.classes[state.minus];
        sentence.textContent = "Explaining " + k.name + " minus " + b.name + " (logit difference " + fmt(k.logit - b.logit) +
          "): for means evidence for " + k.name + " over " + b.name + ", against the reverse. Attribution is linear in the logit, so this is exactly the difference of the two classes' maps.";
      }
      sections.forEach(function (section, li) {
        paintAttribution(section, data.layers[li]);
        paintChannels(section, data.layers[li]);
      });
      paintGroupFlows();
      render();
    }

    explain.addEventListener("change", renderClass);
    minus.addEventListener("change", renderClass);
    renderClass();
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

  /* ---- keyboard shortcuts: each page lists its keys as links (data-shortcut) in the footer ---- */
  function setupShortcuts() {
    document.addEventListener("keydown", function (event) {
      if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
      var target = event.target;
      // Keys typed into a field, or moving a Building Blocks or atlas cursor, are theirs
      // (Tab or Escape leaves a map, and the page's keys work again).
      if (target.closest && target.closest("input, select, textarea, [contenteditable], .bb-views, #atlas-map")) return;
      var links = document.querySelectorAll("a[data-shortcut]");
      for (var i = 0; i < links.length; i++) {
        if (links[i].getAttribute("data-shortcut") === event.key) {
          event.preventDefault();
          window.location.href = links[i].href;
          return;
        }
      }
    });
  }

  setupShortcuts();
  setupDeferredImages();
  setupSearch();
  setupSorting();
  setupBlocks();
})();
