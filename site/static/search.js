/* The index page's search (needs #search-data): jump to a layer, a channel ("layer:channel"
   or "layer channel"), a class or an image. Classic script after common.js. */
(function (atlas) {
  "use strict";

  // The site paths that match a query, best first: [{text, kind, url (null: no page)}].
  function matches(data, query) {
    var q = query.trim(), out = [];
    if (!q) return out;
    var channels = {};
    data.layers.forEach(function (l) { channels[l[0]] = l[1]; });
    var layer = layerName(data, channels, q);
    var m = q.match(/^(.+?)\s*[:\s]\s*(\d+)$/);
    var named = m ? layerName(data, channels, m[1]) : null;
    if (named !== null) out.push(channelMatch(named, parseInt(m[2], 10), channels));
    var lower = q.toLowerCase();
    data.layers.forEach(function (l) {
      if (l[0].toLowerCase().indexOf(lower) === 0 || layer === l[0])
        out.push({ text: l[0], kind: "layer, " + l[1] + " channels", url: "layers/" + atlas.urlSegment(l[0]) + ".html" });
    });
    classMatches(data.classes, lower).forEach(function (k) {
      out.push({ text: k[0], kind: k[1] ? "class" : "class, never predicted in this dataset", url: k[1] });
    });
    data.images.forEach(function (i) {
      if (i[0].toLowerCase().indexOf(lower) >= 0) out.push({ text: i[0], kind: "image", url: i[1] });
    });
    return out.slice(0, 30);
  }

  // A layer's name from its name or an alias, else null.
  function layerName(data, channels, q) {
    if (Object.prototype.hasOwnProperty.call(channels, q)) return q;
    if (Object.prototype.hasOwnProperty.call(data.aliases, q)) return data.aliases[q];
    return null;
  }

  function channelMatch(name, c, channels) {
    if (c < channels[name]) return { text: name + ":" + c, kind: "channel", url: "channels/" + atlas.urlSegment(name) + "/" + c + ".html" };
    return { text: name + " has channels 0-" + (channels[name] - 1), kind: "no such channel", url: null };
  }

  // Classes whose name is the query, then those with a word starting with it, then the rest
  // that contain it; at most 20.
  function classMatches(classes, lower) {
    var exact = [], wordStart = [], partial = [];
    classes.forEach(function (k) {
      var name = k[0].toLowerCase(), at = name.indexOf(lower);
      if (name === lower) exact.push(k);
      else if (at === 0 || (at > 0 && /[\s_-]/.test(name.charAt(at - 1)))) wordStart.push(k);
      else if (at > 0) partial.push(k);
    });
    return exact.concat(wordStart, partial).slice(0, 20);
  }

  function start() {
    var data = atlas.readJson("search-data"), form = document.getElementById("search");
    if (!data || !form) return;
    var box = document.getElementById("search-box"), list = document.getElementById("search-results");

    function show() {
      while (list.firstChild) list.removeChild(list.firstChild);
      var found = matches(data, box.value);
      if (box.value.trim() && !found.length) list.appendChild(atlas.el("li", "Nothing matches."));
      found.forEach(function (f) {
        var li = atlas.el("li");
        li.appendChild(f.url ? atlas.el("a", f.text, { href: f.url }) : atlas.el("span", f.text));
        li.appendChild(atlas.el("small", f.kind));
        list.appendChild(li);
      });
    }

    box.addEventListener("input", show);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var first = matches(data, box.value).filter(function (f) { return f.url; })[0];
      if (first) window.location.href = first.url;
      else show();
    });
  }

  if (typeof module !== "undefined") module.exports = { matches: matches };
  if (typeof document !== "undefined") start();
})(typeof ModelAtlas !== "undefined" ? ModelAtlas : require("./common.js"));
