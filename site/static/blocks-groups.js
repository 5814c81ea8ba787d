/* Building Blocks (image pages; needs #blocks-data).
   The neuron groups' flow diagram (#group-flows): a column
   of groups per layer, links from each group to the next layer's groups and from the last
   layer's groups to the class, their width the flow's size and their colour its sign. */
(function (atlas) {
  "use strict";
  var model = atlas.blocksModel;
  var NS = "http://www.w3.org/2000/svg";
  var ROW_H = 46, TOP = 34;
  // A node: its colour as a stripe, its feature visualization, its number. Flows leave a
  // node on its right (x + NODE_W) and enter it on its left (x).
  var NODE_W = 44;

  function svgElement(tag, attrs, text) {
    var node = document.createElementNS(NS, tag);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function drawNode(svg, x, y, colour, label, icon) {
    var g = document.createElementNS(NS, "g");
    g.appendChild(svgElement("rect", { x: x, y: y, width: icon ? 8 : 18, height: ROW_H - 14, fill: colour }));
    if (icon) g.appendChild(svgElement("image", { x: x + 10, y: y, width: ROW_H - 14, height: ROW_H - 14, href: icon }));
    // Beside a plain node; above an icon (flows leave from the icon's right side).
    var attrs = icon ? { x: x + 10, y: y - 2, "class": "small" } : { x: x + 22, y: y + ROW_H - 16 };
    g.appendChild(svgElement("text", attrs, label));
    svg.appendChild(g);
  }

  // Every link of the diagram: {pair (the column it leaves), from: [column, group], to: [column, group], v}.
  function groupLinks(page, columns) {
    var links = [];
    columns.forEach(function (layer, ci) {
      if (ci > 0 && layer.flows && layer.flows.groups && layer.flows.source === columns[ci - 1].name) {
        model.chosen(layer.flows.groups, page.state).forEach(function (row, g2) {
          row.forEach(function (v, g1) { links.push({ pair: ci - 1, from: [ci - 1, g1], to: [ci, g2], v: v }); });
        });
      }
    });
    var last = columns.length - 1;
    model.chosenColumn(columns[last].groups.attribution, page.state).forEach(function (v, g) {
      links.push({ pair: last, from: [last, g], to: [columns.length, 0], v: v });
    });
    return links;
  }

  // One link as a curve; `top` is the largest |v| (the widest link), `at` places nodes.
  function drawLink(svg, l, top, at, name) {
    var x1 = at.x(l.from[0]) + NODE_W, y1 = at.y(l.from) + (ROW_H - 14) / 2;
    var x2 = at.x(l.to[0]), y2 = at.y(l.to) + (ROW_H - 14) / 2;
    // Sign by side as well as colour: flows for enter their node's top half, flows against its bottom half.
    y2 += l.v >= 0 ? -6 : 6;
    var mid = (x1 + x2) / 2;
    var path = svgElement("path", {
      d: "M" + x1 + "," + y1 + " C" + mid + "," + y1 + " " + mid + "," + y2 + " " + x2 + "," + y2,
      stroke: model.diverging(l.v, Math.abs(l.v) || 1),
      "stroke-width": (top > 0 ? Math.max(0.5, 16 * Math.abs(l.v) / top) : 0.5).toFixed(2),
      "class": "flow",
      "data-pair": String(l.pair),
      "data-value": String(l.v)
    });
    path.appendChild(svgElement("title", {}, name(l.from) + " to " + name(l.to) + ": " + atlas.formatSigned(l.v)));
    svg.insertBefore(path, svg.querySelector("g"));
  }

  function paintGroupFlows(page) {
    var svg = document.getElementById("group-flows");
    if (!svg) return;
    while (svg.lastChild && svg.lastChild.tagName !== "title") svg.removeChild(svg.lastChild);
    var columns = page.data.layers.filter(function (l) { return l.groups; });
    if (!columns.length) return;
    var width = Math.max(600, svg.parentNode.clientWidth - 8);
    var groupsPer = Math.max.apply(null, columns.map(function (l) { return l.groups.colours.length; }));
    var height = groupsPer * ROW_H + TOP + 10, colW = (width - 160) / columns.length;
    var classX = 10 + columns.length * colW, classY = TOP + (groupsPer - 1) * ROW_H / 2;
    [["viewBox", "0 0 " + width + " " + height], ["width", String(width)], ["height", String(height)]].forEach(function (a) { svg.setAttribute(a[0], a[1]); });
    // Column `columns.length` is the class, one node.
    var at = {
      x: function (ci) { return ci === columns.length ? classX - 4 : 10 + ci * colW; },
      y: function (node) { return node[0] === columns.length ? classY : TOP + node[1] * ROW_H; }
    };
    function name(node) {
      if (node[0] === columns.length) return page.className();
      return model.groupText(columns[node[0]], node[1]) + " of " + columns[node[0]].name;
    }
    columns.forEach(function (layer, ci) {
      svg.appendChild(svgElement("text", { x: at.x(ci), y: 14, "class": "column" }, layer.name));
      layer.groups.colours.forEach(function (colour, g) {
        drawNode(svg, at.x(ci), at.y([ci, g]), colour, model.groupText(layer, g), (layer.groups.icons || [])[g]);
      });
    });
    svg.appendChild(svgElement("text", { x: classX - 4, y: 14, "class": "column" }, "class"));
    drawNode(svg, classX - 4, classY, "#333", page.className());
    var links = groupLinks(page, columns), top = model.maxAbs(links.map(function (l) { return l.v; }));
    links.forEach(function (l) { drawLink(svg, l, top, at, name); });
    paintGroupValues(page);
  }

  // Each group's attribution to the chosen class, beside its maps.
  function paintGroupValues(page) {
    document.querySelectorAll(".group-value").forEach(function (span) {
      var layer = page.data.layers[parseInt(span.getAttribute("data-layer"), 10)];
      var values = layer && layer.groups ? model.chosenColumn(layer.groups.attribution, page.state) : null;
      if (values) span.textContent = atlas.formatSigned(values[parseInt(span.getAttribute("data-group"), 10)]) + " for " + page.className();
    });
  }

  atlas.blocksGroups = { paint: paintGroupFlows };
})(ModelAtlas);
