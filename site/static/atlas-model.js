/* The activation atlas (atlas/<layer>.html; needs #atlas-data): the arithmetic of the map.
   Where a cell sits, which zoom level shows at a scale, how a zoom or a drag moves the
   view, which cell an arrow key reaches, how the class filter shades the cells, and the
   texts built from them. No DOM: unit-tested in Node (tests/js/pages.test.js).

   A view is { scale, x, y }: the world (the whole map, as wide as the map element at
   scale 1) is scaled by `scale` and moved by (x, y) pixels. */
(function (atlas) {
  "use strict";

  var MIN_CELL_PX = 28; // the finest level whose cells are at least this wide is shown
  var MAX_SCALE = 16;
  var PAN_PX = 3; // a pointer that moves further than this (|dx| + |dy|) pans: not a click

  function wholeMap() {
    return { scale: 1, x: 0, y: 0 };
  }

  // A cell's place in its level, as CSS percentages of the world.
  function cellBox(cell, side) {
    var size = 100 / side;
    return { left: cell.j * size + "%", top: cell.i * size + "%", size: size + "%" };
  }

  // The index of the finest level (sides: coarsest first) whose cells are at least
  // MIN_CELL_PX wide on a map `width` pixels wide at `scale`; the coarsest when none is.
  function levelFor(sides, width, scale) {
    var shown = width * scale;
    var chosen = 0;
    sides.forEach(function (side, index) {
      if (shown / side >= MIN_CELL_PX) chosen = index;
    });
    return chosen;
  }

  // The view moved back so the world covers the map (no empty margin at any side).
  function clampView(view, width) {
    var limit = width * (view.scale - 1);
    return {
      scale: view.scale,
      x: Math.min(0, Math.max(-limit, view.x)),
      y: Math.min(0, Math.max(-limit, view.y))
    };
  }

  // The view zoomed by `factor` around the map's point (px, py), which stays in place.
  function zoomView(view, factor, px, py) {
    var scale = Math.min(MAX_SCALE, Math.max(1, view.scale * factor));
    var k = scale / view.scale;
    return { scale: scale, x: px - (px - view.x) * k, y: py - (py - view.y) * k };
  }

  // The view a drag of (dx, dy) from `start` ({ vx, vy }: the view's place then) gives.
  function pannedView(view, start, dx, dy) {
    return { scale: view.scale, x: start.vx + dx, y: start.vy + dy };
  }

  function isPan(dx, dy) {
    return Math.abs(dx) + Math.abs(dy) > PAN_PX;
  }

  function transform(view) {
    return "translate(" + view.x + "px," + view.y + "px) scale(" + view.scale + ")";
  }

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

  // Where an arrow takes the cursor: the first cell while there is no cursor yet.
  function arrowTarget(cells, cursor, step) {
    return cursor === null ? 0 : nearestCell(cells, cursor, step[0], step[1]);
  }

  // The map's keys besides the arrows (atlas.ARROWS), by what they do.
  var KEYS = {
    "+": "zoomIn", "=": "zoomIn", "-": "zoomOut", "_": "zoomOut", "0": "wholeMap",
    "Enter": "pin", " ": "pin", "Escape": "unpin"
  };

  // What a key does on the map: { step: [di, dj] } for an arrow, { action: name } for the
  // others, null for a key that is not the map's (it goes on to the page's shortcuts).
  function keyAction(key) {
    if (Object.prototype.hasOwnProperty.call(atlas.ARROWS, key)) return { step: atlas.ARROWS[key] };
    if (Object.prototype.hasOwnProperty.call(KEYS, key)) return { action: KEYS[key] };
    return null;
  }

  // Whether the values the filter needs are loaded: class `a` ("" for none) and, when
  // comparing, class `b` (classValues: class id -> per level, per cell attribution).
  function filterLoaded(classValues, a, b) {
    return a !== "" && Boolean(classValues[a]) && (b === "" || Boolean(classValues[b]));
  }

  // Cell `index` of level `li` under the filter: class a's attribution, minus class b's
  // when comparing; null while the filter is off or its values are not loaded.
  function filterValue(classValues, a, b, li, index) {
    if (!filterLoaded(classValues, a, b)) return null;
    var value = classValues[a][li][index];
    if (b !== "") value -= classValues[b][li][index];
    return value;
  }

  // A cell's opacity under the class filter: with one class, cells that support it stay
  // bright and the rest fade; with two (comparing), brightness is the size of the difference.
  function shade(v, scale, comparing) {
    if (comparing) return 0.15 + 0.85 * (Math.abs(v) / scale);
    return v > 0 ? 0.15 + 0.85 * (v / scale) : 0.08;
  }

  // Each cell's look under the filter, for its values (null: none): null (unshaded), or
  // { value, opacity, side } with side "for"/"against" when comparing. The scale is the
  // largest magnitude of the level; with none above zero no cell is shaded.
  function shading(values, comparing) {
    var scale = 0;
    values.forEach(function (v) {
      if (v !== null) scale = Math.max(scale, Math.abs(v));
    });
    return values.map(function (v) {
      if (v === null || !scale) return null;
      var side = comparing ? (v >= 0 ? "for" : "against") : null;
      return { value: v, opacity: shade(v, scale, comparing), side: side };
    });
  }

  // The note beside the class filter (names: class id -> name).
  function filterNote(names, a, b, loaded) {
    if (a === "") return "";
    if (!loaded) return "loading…";
    return b === ""
      ? "Brighter cells support " + names[a] + " more."
      : "Orange: supports " + names[a] + " more; purple: " + names[b] + ".";
  }

  function levelNote(side, count) {
    return "Level " + side + " × " + side + ": " + count + " cells with vectors";
  }

  function cellTitle(cell, side) {
    return "Cell (" + cell.i + ", " + cell.j + ") of " + side + " × " + side;
  }

  function cellCount(cell, pinned) {
    return cell.n + " activation vector" + (cell.n === 1 ? "" : "s") + (pinned ? " · pinned" : "");
  }

  // A cell's tooltip: where it is and its label's short form (cell.label: null without).
  function cellTip(cell) {
    return "(" + cell.i + ", " + cell.j + ")" + (cell.label ? " " + cell.label.short : "");
  }

  var model = {
    cellTip: cellTip,
    MIN_CELL_PX: MIN_CELL_PX,
    MAX_SCALE: MAX_SCALE,
    wholeMap: wholeMap,
    cellBox: cellBox,
    levelFor: levelFor,
    clampView: clampView,
    zoomView: zoomView,
    pannedView: pannedView,
    isPan: isPan,
    transform: transform,
    nearestCell: nearestCell,
    arrowTarget: arrowTarget,
    keyAction: keyAction,
    filterLoaded: filterLoaded,
    filterValue: filterValue,
    shade: shade,
    shading: shading,
    filterNote: filterNote,
    levelNote: levelNote,
    cellTitle: cellTitle,
    cellCount: cellCount
  };
  if (typeof module !== "undefined") module.exports = model;
  else atlas.atlasModel = model;
})(typeof ModelAtlas !== "undefined" ? ModelAtlas : require("./common.js"));
