/* The activation atlas (atlas/<layer>.html; needs #atlas-data): a pannable, zoomable map of
   a layer's activation space. Data: the JSON in #atlas-data (pipeline/site/atlas_page.py).
   Each class of the filter comes as a script calling modelAtlasClass(...) (defined here),
   loaded on demand: a <script> element works from file://, where fetch does not.
   This file owns the view, the cursor and the filter, and wires the pointer, the keys and
   the controls to them. Loaded last, after common.js, atlas-model.js and atlas-views.js. */
(function (atlas) {
  "use strict";
  var model = atlas.atlasModel, views = atlas.atlasViews;

  function start() {
    var data = atlas.readJson("atlas-data");
    if (!data) return;
    var byId = document.getElementById.bind(document);
    var world = byId("atlas-world");
    var page = {
      data: data,
      map: byId("atlas-map"),
      world: world,
      panel: byId("atlas-panel"),
      panelHint: Array.prototype.slice.call(byId("atlas-panel").childNodes), // shown with no cursor
      levelNote: byId("atlas-level"),
      classSelect: byId("atlas-class"),
      compareSelect: byId("atlas-compare"),
      filterNote: byId("atlas-filter-note"),
      view: model.wholeMap(),
      levels: views.makeLevels(world, data.levels),
      current: null, // the level shown
      cursor: null, // index of the highlighted cell in the current level
      pinned: false,
      classValues: {}, // class id -> per level, per cell attribution
      pendingClass: {}, // class id -> true while its script loads
      drag: { down: false, moved: false, start: null } // a pointer down on the map; moved: a pan
    };
    wireCursor(page);
    wirePanAndZoom(page);
    wireKeys(page);
    wireFilter(page);
    window.addEventListener("resize", function () { redraw(page); });
    redraw(page);
  }

  // -- the view: pan, zoom and the level they show -----------------------------------------
  function redraw(page) {
    var width = page.map.clientWidth;
    page.view = model.clampView(page.view, width);
    page.world.style.transform = model.transform(page.view);
    var sides = page.levels.map(function (level) { return level.side; });
    show(page, page.levels[model.levelFor(sides, width, page.view.scale)]);
  }

  // Another level's cells are other cells: the cursor, the pin and the panel's cell go.
  function show(page, level) {
    if (level === page.current) return;
    if (page.current) views.moveHighlight(page.current, page.cursor, null);
    views.showLevel(page.map, page.levelNote, level, page.current);
    page.current = level;
    page.cursor = null;
    page.pinned = false;
    page.panel.replaceChildren.apply(page.panel, page.panelHint);
    applyFilter(page);
  }

  // Zoom by `factor` around the point (px, py) of the map (its centre by default).
  function zoom(page, factor, px, py) {
    if (px === undefined) px = py = page.map.clientWidth / 2;
    page.view = model.zoomView(page.view, factor, px, py);
    redraw(page);
  }

  function showWholeMap(page) {
    page.view = model.wholeMap();
    redraw(page);
  }

  function wirePanAndZoom(page) {
    var map = page.map, drag = page.drag;
    map.addEventListener("pointerdown", function (event) {
      drag.down = true;
      drag.moved = false;
      drag.start = { x: event.clientX, y: event.clientY, vx: page.view.x, vy: page.view.y };
    });
    window.addEventListener("pointermove", function (event) {
      if (!drag.down) return;
      var dx = event.clientX - drag.start.x, dy = event.clientY - drag.start.y;
      if (model.isPan(dx, dy)) drag.moved = true;
      page.view = model.pannedView(page.view, drag.start, dx, dy);
      if (drag.moved) redraw(page);
    });
    window.addEventListener("pointerup", function () { drag.down = false; });
    map.addEventListener("wheel", function (event) {
      event.preventDefault();
      var box = map.getBoundingClientRect();
      zoom(page, event.deltaY < 0 ? 1.25 : 0.8, event.clientX - box.left, event.clientY - box.top);
    }, { passive: false });
    document.getElementById("atlas-zoom-in").addEventListener("click", function () { zoom(page, 2); });
    document.getElementById("atlas-zoom-out").addEventListener("click", function () { zoom(page, 0.5); });
    document.getElementById("atlas-zoom-reset").addEventListener("click", function () { showWholeMap(page); });
  }

  // -- the cursor: the pointer shows a cell, a click pins it -----------------------------
  function setCursor(page, index, pin) {
    views.moveHighlight(page.current, page.cursor, index);
    page.cursor = index;
    if (pin !== undefined) page.pinned = pin;
    if (index !== null) describe(page, index);
  }

  function describe(page, index) {
    views.describeCell(page.panel, page.data, page.current, index, page.pinned, filterValue(page, index));
  }

  function wireCursor(page) {
    page.map.addEventListener("pointermove", function (event) {
      if (page.drag.down || page.pinned) return;
      var index = views.cellAt(event.target);
      if (index !== null && index !== page.cursor) setCursor(page, index);
    });
    page.map.addEventListener("click", function (event) {
      if (page.drag.moved) return;
      var index = views.cellAt(event.target);
      if (index === null) return;
      setCursor(page, index, !(page.pinned && index === page.cursor));
    });
  }

  // Arrow keys move the cursor to the nearest cell in that direction (the first cell when
  // there is no cursor yet); the map's other keys zoom and pin (model.keyAction).
  function wireKeys(page) {
    page.map.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      var key = model.keyAction(event.key);
      if (key === null) return;
      if (key.step) setCursor(page, model.arrowTarget(page.current.cells, page.cursor, key.step));
      else keyCommand(page, key.action);
      event.preventDefault();
      event.stopPropagation(); // the page's own shortcuts do not also fire
    });
  }

  function keyCommand(page, action) {
    if (action === "zoomIn") zoom(page, 2);
    else if (action === "zoomOut") zoom(page, 0.5);
    else if (action === "wholeMap") showWholeMap(page);
    else if (action === "pin") {
      if (page.cursor !== null) setCursor(page, page.cursor, !page.pinned);
    } else if (action === "unpin") {
      page.pinned = false;
      if (page.cursor !== null) describe(page, page.cursor);
    }
  }

  // -- the class filter: shade the cells by one class's attribution, or two's difference ---
  function wireFilter(page) {
    window.modelAtlasClass = function (payload) {
      if (payload.layer !== page.data.layer) return;
      page.classValues[payload["class"]] = payload.levels;
      delete page.pendingClass[payload["class"]];
      applyFilter(page);
    };
    page.classSelect.addEventListener("change", function () { applyFilter(page); });
    page.compareSelect.addEventListener("change", function () { applyFilter(page); });
  }

  // Loads class `id`'s values ("" for none) unless they are loaded or on their way.
  function need(page, id) {
    if (id === "" || page.classValues[id] || page.pendingClass[id]) return;
    page.pendingClass[id] = true;
    document.body.appendChild(atlas.el("script", null, { src: page.data.classScripts[id] }));
  }

  function filterValue(page, index) {
    var li = page.levels.indexOf(page.current);
    return model.filterValue(page.classValues, page.classSelect.value, page.compareSelect.value, li, index);
  }

  function applyFilter(page) {
    if (!page.current) return;
    var a = page.classSelect.value, b = page.compareSelect.value;
    need(page, a);
    if (b !== "") need(page, b);
    var values = page.current.items.map(function (item, index) { return filterValue(page, index); });
    views.paintShading(page.current.items, model.shading(values, b !== ""));
    page.filterNote.textContent = model.filterNote(page.data.classes, a, b, model.filterLoaded(page.classValues, a, b));
    if (page.cursor !== null) describe(page, page.cursor);
  }

  start();
})(ModelAtlas);
