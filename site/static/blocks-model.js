/* Building Blocks (image pages; needs #blocks-data).
   The arithmetic behind the views: which class's values to
   show, the diverging colour scale, grid moves. No DOM: unit-tested in Node.

   Attribution is shown for one class, or for the difference of two (exact: attribution is
   linear in the logit). One diverging scale everywhere: orange for, purple against. */
(function (atlas) {
  "use strict";

  var FOR = [179, 88, 6], AGAINST = [84, 39, 136];

  // v on a scale from white (0) to the full colour at |v| >= scale; white without a value.
  function diverging(v, scale) {
    if (v === null || isNaN(v) || !(scale > 0)) return "rgb(255,255,255)";
    var t = Math.min(1, Math.abs(v) / scale), c = v >= 0 ? FOR : AGAINST;
    return "rgb(" + c.map(function (x) { return Math.round(255 + (x - 255) * t); }).join(",") + ")";
  }

  // The chosen class's values of a per-class array (rows: classes), or the difference of
  // the two chosen classes' (state.t minus state.minus).
  function chosen(rows, state) {
    if (!rows) return null;
    var a = rows[state.t];
    if (state.minus === null) return a;
    var b = rows[state.minus];
    if (!Array.isArray(a)) return a - b;
    return a.map(function (v, i) {
      return Array.isArray(v) ? v.map(function (w, j) { return w - b[i][j]; }) : v - b[i];
    });
  }

  // The same of a [G][T] matrix (a column per class) -> [G].
  function chosenColumn(matrix, state) {
    if (!matrix) return null;
    return matrix.map(function (row) { return state.minus === null ? row[state.t] : row[state.t] - row[state.minus]; });
  }

  function className(classes, state) {
    var a = classes[state.t].name;
    return state.minus === null ? a : a + " minus " + classes[state.minus].name;
  }

  function maxAbs(values) {
    var m = 0;
    values.forEach(function (v) { if (v !== null && Math.abs(v) > m) m = Math.abs(v); });
    return m;
  }

  // "(row, column)" of a cell index on the layer's grid.
  function rowCol(layer, cell) { return "(" + Math.floor(cell / layer.gw) + ", " + (cell % layer.gw) + ")"; }

  // The cell an arrow key moves to (the grid's edge stops it), or null for another key.
  function moveCell(layer, cell, key) {
    var move = atlas.ARROWS[key];
    if (!move) return null;
    var y = Math.min(layer.gh - 1, Math.max(0, Math.floor(cell / layer.gw) + move[0]));
    var x = Math.min(layer.gw - 1, Math.max(0, (cell % layer.gw) + move[1]));
    return y * layer.gw + x;
  }

  // The middle cell of a layer's grid (where the keyboard cursor starts).
  function centreCell(layer) { return Math.floor(layer.gh / 2) * layer.gw + Math.floor(layer.gw / 2); }

  // The `count` channels most for (largest positive values, ties by channel) and most
  // against (most negative) -> [for, against], each a list of channel indices.
  function strongestChannels(values, count) {
    var best = values.map(function (v, c) { return c; });
    best.sort(function (a, b) { return values[b] - values[a] || a - b; });
    return [best.slice(0, count).filter(function (c) { return values[c] > 0; }),
            best.slice().reverse().slice(0, count).filter(function (c) { return values[c] < 0; })];
  }

  // Flows into one cell (rows[cell]), or into all cells (the sum over rows) when cell is null.
  function flowValues(rows, cell) {
    if (cell !== null) return rows[cell];
    return rows[0].map(function (v, p) { return rows.reduce(function (s, r) { return s + r[p]; }, 0); });
  }

  // A channel as the views name it: "conv:5" with its label's short form when it has one
  // (layer.labels: channel -> label, in the page data).
  function channelText(layer, c) {
    var label = (layer.labels || {})[String(c)];
    return layer.name + ":" + c + (label ? " " + label : "");
  }

  // Neuron group g (0-based) of a layer, with its label when it has a clear one.
  function groupText(layer, g) {
    var label = layer.groups && layer.groups.labels ? layer.groups.labels[g] : null;
    return "group " + (g + 1) + (label && label.short !== "no clear label" ? " · " + label.short : "");
  }

  var model = {
    channelText: channelText,
    groupText: groupText,
    diverging: diverging,
    chosen: chosen,
    chosenColumn: chosenColumn,
    className: className,
    maxAbs: maxAbs,
    rowCol: rowCol,
    moveCell: moveCell,
    centreCell: centreCell,
    strongestChannels: strongestChannels,
    flowValues: flowValues
  };
  if (typeof module !== "undefined") module.exports = model;
  else atlas.blocksModel = model;
})(typeof ModelAtlas !== "undefined" ? ModelAtlas : require("./common.js"));
