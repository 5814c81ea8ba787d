/* Building Blocks (image pages; needs #blocks-data).
   The per-layer views: each layer's photo, semantic
   dictionary, activation grid, attribution map and flows from the layer before share one
   gh x gw grid of cells, so a cell index is the same place in every view. This file makes
   the cells and paints the class-dependent views; blocks.js owns the cursor. */
(function (atlas) {
  "use strict";
  var el = atlas.el, model = atlas.blocksModel;

  // `count` cells (data-cell = index) in `box`, each made by `make(i)` (a plain span without).
  function makeCells(box, count, make) {
    for (var i = 0; i < count; i++) {
      var cell = make ? make(i) : el("span");
      cell.classList.add("cell");
      cell.setAttribute("data-cell", String(i));
      box.appendChild(cell);
    }
  }

  // The semantic dictionary: each cell's strongest channel's icon, sized by the cell's
  // activation magnitude (its number, faded the same, when the channel has no icon).
  function dictionaryCells(box, layer) {
    var d = layer.dictionary, top = model.maxAbs(d.magnitude);
    makeCells(box, layer.gh * layer.gw, function (i) {
      var c = d.channels[i * d.k], icon = layer.icons[String(c)], span = el("span", null, { title: model.channelText(layer, c) });
      var scale = top > 0 ? Math.max(0.2, d.magnitude[i] / top) : 1;
      if (icon) span.appendChild(el("img", null, { src: icon, alt: "", style: "width:" + (scale * 100).toFixed(1) + "%" }));
      else span.appendChild(el("b", c, { style: "opacity:" + scale.toFixed(2) }));
      return span;
    });
  }

  // The activation grid's icons (in the page already), scaled by magnitude.
  function gridCells(box, layer) {
    var mags = layer.grid_magnitude || [], top = model.maxAbs(mags);
    box.querySelectorAll("img").forEach(function (img, i) {
      img.classList.add("cell");
      if (top > 0) img.style.transform = "scale(" + Math.max(0.25, mags[i] / top).toFixed(3) + ")";
    });
  }

  function attributionCells(box, layer) {
    makeCells(box, layer.gh * layer.gw, function () { var s = el("span"); s.appendChild(el("i", null, { "class": "bar" })); return s; });
  }

  // Fill a view's cells by its kind (data-view).
  function makeView(kind, box, layer) {
    if (kind === "photo") makeCells(box, layer.gh * layer.gw);
    if (kind === "dictionary" && layer.dictionary) dictionaryCells(box, layer);
    if (kind === "grid") gridCells(box, layer);
    if (kind === "attribution") attributionCells(box, layer);
    if (kind === "flows" && layer.flows) makeCells(box, layer.flows.gh * layer.flows.gw);
  }

  // The attribution map of the chosen class: each cell's colour, and a bar up (for) or
  // down (against) from the middle; the layer's sum as a sentence.
  function paintAttribution(page, section, layer) {
    var values = model.chosen(layer.spatial, page.state);
    if (!values) return;
    var scale = model.maxAbs(values), range = section.querySelector(".view[data-view=attribution] .range");
    if (range) range.textContent = "±" + atlas.formatNumber(scale);
    section.querySelectorAll(".view[data-view=attribution] .cell").forEach(function (cell, i) {
      var v = values[i], bar = cell.querySelector(".bar"), t = scale > 0 ? Math.min(1, Math.abs(v) / scale) : 0;
      cell.style.background = model.diverging(v, scale * 1.5);
      cell.setAttribute("data-value", String(v));
      cell.title = "cell " + model.rowCol(layer, i) + ": " + atlas.formatSigned(v);
      bar.style.height = (t * 50).toFixed(1) + "%";
      bar.style.top = v >= 0 ? (50 - t * 50).toFixed(1) + "%" : "50%";
      bar.style.background = model.diverging(v, Math.abs(v));   // the full colour: the bar's length is the size
    });
    var totals = model.chosen(layer.total, page.state), sentence = section.querySelector(".layer-sentence");
    if (sentence && totals !== null) {
      var pos = values.filter(function (v) { return v > 0; }).length;
      sentence.textContent = "Sum over this layer's cells for " + page.className() + ": " + atlas.formatSigned(totals) +
        " (" + pos + " of " + values.length + " cells for, the others against).";
    }
  }

  // The channels most for and most against the chosen class, as two lists of bars.
  function paintChannels(page, section, layer) {
    var box = section.querySelector(".channel-bars"), values = model.chosen(layer.channel, page.state);
    if (!box || !values) return;
    while (box.firstChild) box.removeChild(box.firstChild);
    var lists = model.strongestChannels(values, 6), scale = model.maxAbs(values);
    [["Channels for " + page.className(), lists[0]], ["Channels against", lists[1]]].forEach(function (part) {
      var wrap = el("div"), list = el("ol", null, { "class": "diverging-list" });
      wrap.appendChild(el("h3", part[0]));
      if (!part[1].length) list.appendChild(el("li", "none"));
      part[1].forEach(function (c) { list.appendChild(channelBar(layer, c, values[c], scale)); });
      wrap.appendChild(list);
      box.appendChild(wrap);
    });
  }

  function channelBar(layer, c, value, scale) {
    var li = el("li", null, { "data-channel": String(c) }), key = String(c);
    var label = layer.pages[key] ? el("a", null, { href: layer.pages[key] }) : el("span");
    if (layer.icons[key]) label.appendChild(el("img", null, { src: layer.icons[key], width: "32", height: "32", alt: "", "class": "thumb" }));
    var name = el("span", layer.name + ":" + c);
    if (layer.labels && layer.labels[key]) name.appendChild(el("small", layer.labels[key], { "class": "channel-label" }));
    label.appendChild(name);
    li.appendChild(label);
    var axis = el("span", null, { "class": "axis" }), t = scale > 0 ? Math.abs(value) / scale : 0;
    axis.appendChild(el("i", null, { "class": value >= 0 ? "bar for" : "bar against", style: "width:" + (t * 50).toFixed(1) + "%" }));
    li.appendChild(axis);
    li.appendChild(el("span", atlas.formatSigned(value), { "class": "value" }));
    return li;
  }

  // The flows from the layer before into the cursor's cell (or into all cells).
  function paintFlows(page, section, li) {
    var layer = page.data.layers[li], box = section.querySelector(".view[data-view=flows] .cells");
    if (!box || !layer.flows) return;
    var here = page.state.layer === li && page.state.cell !== null;
    var values = model.flowValues(model.chosen(layer.flows.cells, page.state), here ? page.state.cell : null);
    var scale = model.maxAbs(values);
    box.querySelectorAll(".cell").forEach(function (cell, p) {
      cell.style.background = model.diverging(values[p], scale);
      cell.setAttribute("data-value", String(values[p]));
    });
    var caption = section.querySelector(".view[data-view=flows] figcaption");
    caption.textContent = "From " + layer.flows.source + (here ? " into " + model.rowCol(layer, page.state.cell) : ", all cells");
  }

  atlas.blocksViews = {
    makeView: makeView,
    paintAttribution: paintAttribution,
    paintChannels: paintChannels,
    paintFlows: paintFlows
  };
})(ModelAtlas);
