// The activation-atlas page (templates/atlas.html; needs #atlas-data): a pannable,
// zoomable map of a layer's activation space. Data: the JSON in #atlas-data
// (pipeline/site/atlas_page.py); each class of the filter comes as a script calling
// modelAtlasClass(...), loaded on demand (a <script> element works from file://, where
// fetch does not). Classic script after common.js.
(function (atlas) {
  "use strict";
  var el = atlas.el, signed = atlas.formatSigned; // the map's values are attributions: signed

  // The cell an arrow moves to from cells[from]: the nearest one in direction (di, dj),
  // counting a step across the direction twice; cells[from] itself when there is none.
  function nearestCell(cells, from, di, dj) {
    var here = cells[from];
    var best = null;
    var bestCost = Infinity;
    cells.forEach(function (c, index) {
      var along = (c.i - here.i) * di + (c.j - here.j) * dj;
      if (along <= 0) return;
      var across = Math.abs((c.i - here.i) * dj) + Math.abs((c.j - here.j) * di);
      var cost = along + 2 * across;
      if (cost < bestCost) {
        bestCost = cost;
        best = index;
      }
    });
    return best === null ? from : best;
  }

  // A cell's opacity under the class filter: with one class, cells that support it stay
  // bright and the rest fade; with two (comparing), brightness is the size of the difference.
  function shade(v, scale, comparing) {
    if (comparing) return 0.15 + 0.85 * (Math.abs(v) / scale);
    return v > 0 ? 0.15 + 0.85 * (v / scale) : 0.08;
  }

  if (typeof module !== "undefined") module.exports = { nearestCell: nearestCell, shade: shade };
  if (typeof document === "undefined") return;
  var data = atlas.readJson("atlas-data");
  if (!data) return;
  var map = document.getElementById("atlas-map");
  var world = document.getElementById("atlas-world");
  var panel = document.getElementById("atlas-panel");
  var levelNote = document.getElementById("atlas-level");
  var classSelect = document.getElementById("atlas-class");
  var compareSelect = document.getElementById("atlas-compare");
  var filterNote = document.getElementById("atlas-filter-note");

  var MIN_CELL_PX = 28; // the finest level whose cells are at least this wide is shown
  var MAX_SCALE = 16;
  var view = { scale: 1, x: 0, y: 0 };
  var levels = []; // {side, cells, el, items: [element per cell], loaded}
  var current = null; // the level shown
  var cursor = null; // index of the highlighted cell in the current level
  var pinned = false;
  var classValues = {}; // class id -> per level, per cell attribution
  var pendingClass = {};
  var dragging = false; // a pointer is down on the map
  var moved = false; // ... and has moved: a pan, not a click
  var start = null; // where the drag started (pointer and view)

  // -- drawing the levels ---------------------------------------------------------------
  data.levels.forEach(function (level) {
    var layer = el("div", null, { "class": "atlas-level", "data-side": level.side });
    layer.hidden = true;
    var size = 100 / level.side;
    var items = level.cells.map(function (cell, index) {
      var item = cell.icon ? el("img", null, { alt: "", "data-src": cell.icon }) : el("span");
      item.className = "atlas-cell";
      item.dataset.index = index;
      item.style.left = cell.j * size + "%";
      item.style.top = cell.i * size + "%";
      item.style.width = item.style.height = size + "%";
      layer.appendChild(item);
      return item;
    });
    world.appendChild(layer);
    levels.push({ side: level.side, cells: level.cells, el: layer, items: items, loaded: false });
  });

  function chooseLevel() {
    var width = map.clientWidth * view.scale;
    var chosen = levels[0];
    levels.forEach(function (level) {
      if (width / level.side >= MIN_CELL_PX) chosen = level;
    });
    return chosen;
  }

  function show(level) {
    if (level === current) return;
    if (current) current.el.hidden = true;
    current = level;
    level.el.hidden = false;
    if (!level.loaded) {
      // Icons load when their level is first shown: the finest level may hold thousands.
      level.items.forEach(function (item) {
        if (item.dataset.src) item.src = item.dataset.src;
      });
      level.loaded = true;
    }
    map.dataset.level = level.side;
    levelNote.textContent =
      "Level " + level.side + " × " + level.side + ": " + level.cells.length + " cells with vectors";
    cursor = null;
    pinned = false;
    applyFilter();
  }

  function redraw() {
    var width = map.clientWidth;
    var limit = width * (view.scale - 1);
    view.x = Math.min(0, Math.max(-limit, view.x));
    view.y = Math.min(0, Math.max(-limit, view.y));
    world.style.transform = "translate(" + view.x + "px," + view.y + "px) scale(" + view.scale + ")";
    show(chooseLevel());
  }

  // Zoom by `factor` around the point (px, py) of the map (its centre by default).
  function zoom(factor, px, py) {
    var width = map.clientWidth;
    if (px === undefined) px = py = width / 2;
    var scale = Math.min(MAX_SCALE, Math.max(1, view.scale * factor));
    var k = scale / view.scale;
    view.x = px - (px - view.x) * k;
    view.y = py - (py - view.y) * k;
    view.scale = scale;
    redraw();
  }

  // -- the panel --------------------------------------------------------------------------
  function cellAt(target) {
    if (!target || !target.classList || !target.classList.contains("atlas-cell")) return null;
    return Number(target.dataset.index);
  }

  function describe(index) {
    var cell = current.cells[index];
    panel.textContent = "";
    panel.appendChild(
      el("h2", "Cell (" + cell.i + ", " + cell.j + ") of " + current.side + " × " + current.side)
    );
    panel.appendChild(el("p", cell.n + " activation vector" + (cell.n === 1 ? "" : "s") + (pinned ? " · pinned" : ""), { "class": "meta" }));
    var value = filterValue(index);
    if (value !== null) panel.appendChild(el("p", "Shading: " + signed(value), { "class": "meta" }));
    panel.appendChild(el("h3", "Top classes"));
    var classes = el("ol", null, { "class": "atlas-classes" });
    cell.classes.forEach(function (pair) {
      var id = String(pair[0]);
      var li = el("li");
      var name = data.classes[id] || "class " + id;
      li.appendChild(data.classPages[id] ? el("a", name, { href: data.classPages[id] }) : el("span", name));
      li.appendChild(el("span", " " + signed(pair[1]), { "class": "value" }));
      classes.appendChild(li);
    });
    panel.appendChild(classes);
    if (cell.examples.length) {
      panel.appendChild(el("h3", "Dataset examples"));
      var examples = el("div", null, { "class": "atlas-examples" });
      cell.examples.forEach(function (e) {
        var img = e.crop
          ? el("img", null, { src: e.crop, width: 64, height: 64, alt: "a crop of " + e.image + " whose vector fell in this cell" })
          : el("span", e.image);
        if (e.page) {
          var a = el("a", null, { href: e.page });
          a.appendChild(img);
          examples.appendChild(a);
        } else {
          examples.appendChild(img);
        }
      });
      panel.appendChild(examples);
    }
    panel.appendChild(el("h3", "Strongest channels"));
    var channels = el("ol", null, { "class": "atlas-channels" });
    cell.channels.forEach(function (ch) {
      var li = el("li");
      var a = el("a", null, { href: ch.page });
      if (ch.thumb) a.appendChild(el("img", null, { src: ch.thumb, width: 32, height: 32, alt: "" }));
      a.appendChild(el("span", data.layer + ":" + ch.c));
      li.appendChild(a);
      li.appendChild(el("span", " " + signed(ch.value), { "class": "value" }));
      channels.appendChild(li);
    });
    panel.appendChild(channels);
  }

  function setCursor(index, pin) {
    if (cursor !== null && current.items[cursor]) current.items[cursor].classList.remove("cursor");
    cursor = index;
    if (pin !== undefined) pinned = pin;
    if (index === null) return;
    current.items[index].classList.add("cursor");
    describe(index);
  }

  map.addEventListener("pointermove", function (event) {
    if (dragging || pinned) return;
    var index = cellAt(event.target);
    if (index !== null && index !== cursor) setCursor(index);
  });
  map.addEventListener("click", function (event) {
    if (moved) return;
    var index = cellAt(event.target);
    if (index === null) return;
    setCursor(index, !(pinned && index === cursor));
  });

  // -- pan and zoom -----------------------------------------------------------------------
  map.addEventListener("pointerdown", function (event) {
    dragging = true;
    moved = false;
    start = { x: event.clientX, y: event.clientY, vx: view.x, vy: view.y };
  });
  window.addEventListener("pointermove", function (event) {
    if (!dragging) return;
    var dx = event.clientX - start.x;
    var dy = event.clientY - start.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) moved = true;
    view.x = start.vx + dx;
    view.y = start.vy + dy;
    if (moved) redraw();
  });
  window.addEventListener("pointerup", function () {
    dragging = false;
  });
  map.addEventListener(
    "wheel",
    function (event) {
      event.preventDefault();
      var box = map.getBoundingClientRect();
      zoom(event.deltaY < 0 ? 1.25 : 0.8, event.clientX - box.left, event.clientY - box.top);
    },
    { passive: false }
  );
  document.getElementById("atlas-zoom-in").addEventListener("click", function () { zoom(2); });
  document.getElementById("atlas-zoom-out").addEventListener("click", function () { zoom(0.5); });
  document.getElementById("atlas-zoom-reset").addEventListener("click", function () {
    view = { scale: 1, x: 0, y: 0 };
    redraw();
  });

  // Arrow keys move the cursor to the nearest cell in that direction (the first cell when
  // there is no cursor yet).
  var DIRECTIONS = atlas.ARROWS;
  function step(di, dj) {
    return cursor === null ? 0 : nearestCell(current.cells, cursor, di, dj);
  }
  map.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var key = event.key;
    if (DIRECTIONS[key]) {
      setCursor(step(DIRECTIONS[key][0], DIRECTIONS[key][1]));
    } else if (key === "+" || key === "=") {
      zoom(2);
    } else if (key === "-" || key === "_") {
      zoom(0.5);
    } else if (key === "0") {
      view = { scale: 1, x: 0, y: 0 };
      redraw();
    } else if (key === "Enter" || key === " ") {
      if (cursor !== null) setCursor(cursor, !pinned);
    } else if (key === "Escape") {
      pinned = false;
      if (cursor !== null) describe(cursor);
    } else {
      return;
    }
    event.preventDefault();
    event.stopPropagation(); // the page's own shortcuts do not also fire
  });

  // -- the class filter -----------------------------------------------------------------
  window.modelAtlasClass = function (payload) {
    if (payload.layer !== data.layer) return;
    classValues[payload["class"]] = payload.levels;
    delete pendingClass[payload["class"]];
    applyFilter();
  };

  function need(id) {
    if (id === "" || classValues[id] || pendingClass[id]) return;
    pendingClass[id] = true;
    var script = el("script", null, { src: data.classScripts[id] });
    document.body.appendChild(script);
  }

  function levelIndex() {
    return levels.indexOf(current);
  }

  function filterValue(index) {
    var a = classSelect.value;
    var b = compareSelect.value;
    if (a === "" || !classValues[a] || (b !== "" && !classValues[b])) return null;
    var value = classValues[a][levelIndex()][index];
    if (b !== "") value -= classValues[b][levelIndex()][index];
    return value;
  }

  function applyFilter() {
    if (!current) return;
    var a = classSelect.value;
    var b = compareSelect.value;
    need(a);
    if (b !== "") need(b);
    var active = a !== "" && classValues[a] && (b === "" || classValues[b]);
    var values = current.items.map(function (item, index) {
      return active ? filterValue(index) : null;
    });
    var scale = 0;
    values.forEach(function (v) {
      if (v !== null) scale = Math.max(scale, Math.abs(v));
    });
    current.items.forEach(function (item, index) {
      var v = values[index];
      item.classList.remove("for", "against");
      if (v === null || !scale) {
        item.style.opacity = "";
        delete item.dataset.value;
        return;
      }
      item.dataset.value = v;
      item.style.opacity = shade(v, scale, b !== "");
      if (b !== "") item.classList.add(v >= 0 ? "for" : "against");
    });
    if (a === "") filterNote.textContent = "";
    else if (!active) filterNote.textContent = "loading…";
    else
      filterNote.textContent =
        b === ""
          ? "Brighter cells support " + data.classes[a] + " more."
          : "Orange: supports " + data.classes[a] + " more; purple: " + data.classes[b] + ".";
    if (cursor !== null) describe(cursor);
  }
  classSelect.addEventListener("change", applyFilter);
  compareSelect.addEventListener("change", applyFilter);

  window.addEventListener("resize", redraw);
  redraw();
})(typeof ModelAtlas !== "undefined" ? ModelAtlas : require("./common.js"));
