/* Building Blocks (image pages; needs #blocks-data).
   What follows the cursor: the panel (#bb-panel) that lists
   the cell's strongest channels, the highlight of the cell in every view, and the live
   region (#bb-live) that reads it out. */
(function (atlas) {
  "use strict";
  var el = atlas.el, model = atlas.blocksModel;

  function paintPanel(page) {
    var panel = page.panel, state = page.state;
    while (panel.firstChild) panel.removeChild(panel.firstChild);
    if (state.layer === null) { panel.appendChild(el("p", "Point at a cell of any view.", { "class": "hint" })); return; }
    var layer = page.data.layers[state.layer], i = state.cell;
    var head = el("p", null, { "class": "panel-head" });
    head.appendChild(el("b", layer.name + " cell " + model.rowCol(layer, i)));
    head.appendChild(el("span", state.pinned ? "pinned (Esc to unpin)" : "click to pin", { "class": state.pinned ? "badge pinned" : "badge" }));
    panel.appendChild(head);
    var values = model.chosen(layer.spatial, state);
    if (values) panel.appendChild(el("p", "Attribution to " + page.className() + " here: " + atlas.formatSigned(values[i])));
    if (layer.dictionary) {
      panel.appendChild(el("p", "Strongest channels (mean activation in the cell):", { "class": "meta" }));
      panel.appendChild(cellChannels(layer, i));
    }
  }

  // The semantic dictionary's channels of cell i, strongest first.
  function cellChannels(layer, i) {
    var d = layer.dictionary, list = el("ol", null, { "class": "panel-channels" });
    for (var k = 0; k < d.k; k++) {
      var c = d.channels[i * d.k + k], key = String(c), li = el("li", null, { "data-channel": key });
      if (layer.icons[key]) li.appendChild(el("img", null, { src: layer.icons[key], width: "64", height: "64", alt: "feature visualization of " + layer.name + " channel " + c }));
      else li.appendChild(el("span", key, { "class": "thumb none" }));
      var name = el("div");
      name.appendChild(layer.pages[key] ? el("a", layer.name + ":" + c, { href: layer.pages[key] }) : el("span", layer.name + ":" + c));
      if (layer.labels && layer.labels[key]) name.appendChild(el("small", layer.labels[key], { "class": "channel-label" }));
      li.appendChild(name);
      li.appendChild(el("span", atlas.formatNumber(d.values[i * d.k + k]), { "class": "value" }));
      list.appendChild(li);
    }
    return list;
  }

  // The cursor's cell in every view of its layer, and as a source in the next layer's flows.
  function highlight(page) {
    document.querySelectorAll(".bb .cell.on").forEach(function (c) { c.classList.remove("on"); });
    if (page.state.layer === null) return;
    var selector = ".cell[data-cell='" + page.state.cell + "']";
    page.sections[page.state.layer].querySelectorAll(".view:not([data-view=flows]) " + selector).forEach(function (c) { c.classList.add("on"); });
    var next = page.sections[page.state.layer + 1];
    if (next) next.querySelectorAll(".view[data-view=flows] " + selector).forEach(function (c) { c.classList.add("on"); });
  }

  // What a screen reader hears once the cursor rests (not on every cell it passes).
  function announce(page) {
    clearTimeout(page.liveTimer);
    page.liveTimer = setTimeout(function () {
      var state = page.state;
      if (state.layer === null) return;
      var layer = page.data.layers[state.layer], d = layer.dictionary, i = state.cell;
      var values = model.chosen(layer.spatial, state);
      var text = layer.name + " cell " + model.rowCol(layer, i) + (state.pinned ? ", pinned" : "");
      if (d) text += ": top channel " + model.channelText(layer, d.channels[i * d.k]) + " (" + atlas.formatNumber(d.values[i * d.k]) + ")";
      if (values) text += "; attribution to " + page.className() + " " + atlas.formatSigned(values[i]);
      page.live.textContent = text;
    }, 400);
  }

  atlas.blocksPanel = { paint: paintPanel, highlight: highlight, announce: announce };
})(ModelAtlas);
