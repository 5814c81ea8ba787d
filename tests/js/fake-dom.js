// The few DOM calls the scripts' pure parts make, for unit tests in Node (no browser).
"use strict";

function fakeElement(tag) {
  return {
    tagName: tag.toUpperCase(),
    textContent: "",
    attributes: {},
    setAttribute(name, value) { this.attributes[name] = String(value); },
    getAttribute(name) { return name in this.attributes ? this.attributes[name] : null; },
  };
}

// A document whose getElementById finds elements with the given text by id.
function fakeDocument(texts) {
  return {
    createElement: fakeElement,
    getElementById(id) {
      if (!texts || !(id in texts)) return null;
      const node = fakeElement("script");
      node.textContent = texts[id];
      return node;
    },
  };
}

module.exports = { fakeElement, fakeDocument };
