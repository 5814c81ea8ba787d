/* The activation atlas (atlas/<layer>.html; needs #atlas-data): what it draws. Each zoom
   level is a layer of cells over the whole world (one shown at a time), shaded by the
   class filter; the panel describes the cell under the cursor. atlas-map.js owns the
   view, the cursor and the filter, and calls these. Loaded after atlas-model.js. */
(function (atlas) {
  "use strict";
  var el = atlas.el, signed = atlas.formatSigned; // the map's values are attributions: signed
  var model = atlas.atlasModel;

  // One element per zoom level of the page data, each with its cells (icons, or empty
  // spans), hidden until shown: { side, cells, el, items: [element per cell], loaded }.
  function makeLevels(world, dataLevels) {
    return dataLevels.map(function (level) {
      var layer = el("div", null, { "class": "atlas-level", "data-side": level.side });
      layer.hidden = true;
      var items = level.cells.map(function (cell, index) {
        var item = makeCell(cell, level.side, index);
        layer.appendChild(item);
        return item;
      });
      world.appendChild(layer);
      return { side: level.side, cells: level.cells, el: layer, items: items, loaded: false };
    });
  }

  function makeCell(cell, side, index) {
    var item = cell.icon ? el("img", null, { alt: "", "data-src": cell.icon }) : el("span");
    var box = model.cellBox(cell, side);
    item.className = "atlas-cell";
    item.title = model.cellTip(cell);
    item.dataset.index = index;
    item.style.left = box.left;
    item.style.top = box.top;
    item.style.width = item.style.height = box.size;
    return item;
  }

  // Shows `level` in place of `previous` (null at the start) and says which it is.
  function showLevel(map, note, level, previous) {
    if (previous) previous.el.hidden = true;
    level.el.hidden = false;
    if (!level.loaded) {
      // Icons load when their level is first shown: the finest level may hold thousands.
      level.items.forEach(function (item) {
        if (item.dataset.src) item.src = item.dataset.src;
      });
      level.loaded = true;
    }
    map.dataset.level = level.side;
    note.textContent = model.levelNote(level.side, level.cells.length);
  }

  // The cell index of an element of the map, or null when it is not a cell.
  function cellAt(target) {
    if (!target || !target.classList || !target.classList.contains("atlas-cell")) return null;
    return Number(target.dataset.index);
  }

  // The cursor's outline moves from cell `from` (null: none) to cell `to` (null: none).
  function moveHighlight(level, from, to) {
    if (from !== null && level.items[from]) level.items[from].classList.remove("cursor");
    if (to !== null) level.items[to].classList.add("cursor");
  }

  // Each cell's look (model.shading: null, or { value, opacity, side }).
  function paintShading(items, looks) {
    items.forEach(function (item, index) {
      var look = looks[index];
      item.classList.remove("for", "against");
      if (look === null) {
        item.style.opacity = "";
        delete item.dataset.value;
        return;
      }
      item.dataset.value = look.value;
      item.style.opacity = look.opacity;
      if (look.side) item.classList.add(look.side);
    });
  }

  // -- the panel: one cell's counts, top classes, dataset examples and channels ------------
  // `value`: the cell's shading under the class filter (null: no filter).
  function describeCell(panel, data, level, index, pinned, value) {
    var cell = level.cells[index];
    panel.textContent = "";
    panel.appendChild(el("h2", model.cellTitle(cell, level.side)));
    panel.appendChild(el("p", model.cellCount(cell, pinned), { "class": "meta" }));
    if (cell.label) panel.appendChild(el("p", "label: " + cell.label.line, { "class": "panel-label unit-label" }));
    if (value !== null) panel.appendChild(el("p", "Shading: " + signed(value), { "class": "meta" }));
    panel.appendChild(el("h3", "Top classes"));
    panel.appendChild(classList(data, cell));
    if (cell.examples.length) {
      panel.appendChild(el("h3", "Dataset examples"));
      panel.appendChild(exampleList(cell));
    }
    panel.appendChild(el("h3", "Strongest channels"));
    panel.appendChild(channelList(data, cell));
  }

  function classList(data, cell) {
    var list = el("ol", null, { "class": "atlas-classes" });
    cell.classes.forEach(function (pair) {
      var id = String(pair[0]);
      var li = el("li");
      var name = data.classes[id] || "class " + id;
      li.appendChild(data.classPages[id] ? el("a", name, { href: data.classPages[id] }) : el("span", name));
      li.appendChild(el("span", " " + signed(pair[1]), { "class": "value" }));
      list.appendChild(li);
    });
    return list;
  }

  function exampleList(cell) {
    var examples = el("div", null, { "class": "atlas-examples" });
    cell.examples.forEach(function (e) {
      var alt = "a crop of " + e.image + " whose vector fell in this cell";
      var img = e.crop ? el("img", null, { src: e.crop, width: 64, height: 64, alt: alt }) : el("span", e.image);
      if (e.page) {
        var a = el("a", null, { href: e.page });
        a.appendChild(img);
        examples.appendChild(a);
      } else {
        examples.appendChild(img);
      }
    });
    return examples;
  }

  function channelList(data, cell) {
    var list = el("ol", null, { "class": "atlas-channels" });
    cell.channels.forEach(function (ch) {
      var li = el("li");
      var a = el("a", null, { href: ch.page });
      if (ch.thumb) a.appendChild(el("img", null, { src: ch.thumb, width: 32, height: 32, alt: "" }));
      a.appendChild(el("span", data.layer + ":" + ch.c));
      li.appendChild(a);
      if (ch.label) li.appendChild(el("span", ch.label, { "class": "channel-label" }));
      li.appendChild(el("span", " " + signed(ch.value), { "class": "value" }));
      list.appendChild(li);
    });
    return list;
  }

  atlas.atlasViews = {
    makeLevels: makeLevels,
    showLevel: showLevel,
    cellAt: cellAt,
    moveHighlight: moveHighlight,
    paintShading: paintShading,
    describeCell: describeCell
  };
})(ModelAtlas);
