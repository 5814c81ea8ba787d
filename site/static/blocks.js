/* An image page's Building Blocks (needs #blocks-data), every view of every layer linked.
   One cursor (a layer and a cell) is shared by all views: the photo, the semantic
   dictionary, the activation grid, the attribution map and the flows. The pointer moves it,
   a click pins it; the keyboard does both. The class picker chooses whose attribution every
   view shows. Loaded after common.js, blocks-model.js and the views (blocks-views.js,
   blocks-groups.js, blocks-panel.js). */
(function (atlas) {
  "use strict";
  var model = atlas.blocksModel, views = atlas.blocksViews, groups = atlas.blocksGroups, panel = atlas.blocksPanel;

  function start() {
    var data = atlas.readJson("blocks-data");
    if (!data) return;
    var page = {
      data: data,
      sections: Array.prototype.slice.call(document.querySelectorAll(".bb-layer")),
      panel: document.getElementById("bb-panel"),
      live: document.getElementById("bb-live"),
      liveTimer: null,
      state: { t: 0, minus: null, layer: null, cell: null, pinned: false },
      className: function () { return model.className(data.classes, page.state); }
    };
    page.sections.forEach(function (section, li) { setupLayer(page, section, li); });
    var explain = document.getElementById("explain-class"), minus = document.getElementById("compare-class");
    function onClassChange() { chooseClass(page, explain.value, minus.value); }
    explain.addEventListener("change", onClassChange);
    minus.addEventListener("change", onClassChange);
    onClassChange();
  }

  // A layer's views: their cells, and the pointer and keys that move the cursor on them.
  function setupLayer(page, section, li) {
    var layer = page.data.layers[li];
    section.querySelectorAll(".view").forEach(function (view) {
      var box = view.querySelector(".cells"), kind = view.getAttribute("data-view");
      views.makeView(kind, box, layer);
      // The flows view's cells are the layer before's.
      var target = kind === "flows" ? li - 1 : li;
      box.addEventListener("mouseover", function (event) {
        var cell = event.target.closest(".cell");
        if (cell && !page.state.pinned) setCursor(page, target, cellIndex(cell));
      });
      box.addEventListener("click", function (event) {
        var cell = event.target.closest(".cell");
        if (cell) clickCell(page, target, cellIndex(cell));
      });
    });
    var viewsBox = section.querySelector(".bb-views");
    viewsBox.addEventListener("focus", function () {
      if (page.state.layer !== li && !page.state.pinned) setCursor(page, li, model.centreCell(layer));
    });
    viewsBox.addEventListener("keydown", function (event) { keyOnLayer(page, li, event); });
  }

  function cellIndex(cell) { return parseInt(cell.getAttribute("data-cell"), 10); }

  // A click pins the cell, or unpins it when it is the pinned one.
  function clickCell(page, li, index) {
    var state = page.state;
    if (state.pinned && state.layer === li && state.cell === index) { state.pinned = false; render(page); return; }
    state.pinned = false;
    setCursor(page, li, index);
    state.pinned = true;
    render(page);
  }

  // Arrows move the cursor (a pinned cursor stays pinned), Enter or Space pin, Escape unpins.
  function keyOnLayer(page, li, event) {
    var state = page.state, layer = page.data.layers[li];
    var cell = state.layer === li && state.cell !== null ? state.cell : 0;
    var moved = model.moveCell(layer, cell, event.key);
    if (moved !== null) {
      event.preventDefault();
      var wasPinned = state.pinned;
      state.pinned = false;
      setCursor(page, li, moved);
      state.pinned = wasPinned;
      render(page);
    } else if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      if (state.layer !== li) setCursor(page, li, cell);
      state.pinned = !state.pinned;
      render(page);
    } else if (event.key === "Escape") {
      state.pinned = false;
      render(page);
    }
  }

  function setCursor(page, li, cell) {
    if (page.state.pinned || li < 0) return;
    page.state.layer = li;
    page.state.cell = cell;
    render(page);
  }

  // What depends on the cursor.
  function render(page) {
    page.sections.forEach(function (section, li) { views.paintFlows(page, section, li); });
    panel.highlight(page);
    panel.paint(page);
    panel.announce(page);
  }

  // The picker's class (`t`, an index of data.classes) minus another (`minus`, "" for none).
  function chooseClass(page, t, minus) {
    var state = page.state, data = page.data;
    state.t = parseInt(t, 10);
    state.minus = minus === "" || parseInt(minus, 10) === state.t ? null : parseInt(minus, 10);
    describeClass(data.classes[state.t], state.minus === null ? null : data.classes[state.minus]);
    page.sections.forEach(function (section, li) {
      views.paintAttribution(page, section, data.layers[li]);
      views.paintChannels(page, section, data.layers[li]);
    });
    groups.paint(page);
    render(page);
  }

  // The sentence under the picker and the link to the class's page.
  function describeClass(k, b) {
    var sentence = document.getElementById("explain-sentence"), classLink = document.getElementById("explain-class-page");
    if (classLink) {
      classLink.hidden = !k.page;
      if (k.page) { classLink.setAttribute("href", k.page); classLink.textContent = k.name + ": class page"; }
    }
    if (b === null) {
      sentence.textContent = "Explaining " + k.name + " (logit " + atlas.formatNumber(k.logit) + ", probability " + atlas.formatNumber(k.probability) +
        "). A layer's sum is gradient × activation: a linear estimate of how far the logit would move if that layer's activations were zero. It is not the logit, and it can be negative for the predicted class when most of a layer pulls against it while a few cells carry the evidence.";
    } else {
      sentence.textContent = "Explaining " + k.name + " minus " + b.name + " (logit difference " + atlas.formatNumber(k.logit - b.logit) +
        "): for means evidence for " + k.name + " over " + b.name + ", against the reverse. Attribution is linear in the logit, so this is exactly the difference of the two classes' maps.";
    }
  }

  start();
})(ModelAtlas);
