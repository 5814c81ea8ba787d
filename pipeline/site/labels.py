"""How a unit's label is written on the site: the short form for lists (:func:`label_short`,
tentative marked), the full line where there is room (:func:`label_line`), the pair as
page JSON for the scripts (:func:`label_json`), and a layer's labels counted for the
index's overview (:func:`layer_label_summary`). Labels themselves come from
:mod:`pipeline.labels`; this module only writes them.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.site.numbers import format_number


def label_short(label) -> str:
    """A channel's label in a few words: ``"dog"``, ``"dog (tentative)"``, ``"no clear
    label"``; "" without one (no attribution in the run)."""
    if label is None:
        return ""
    if label.synset is None:
        return label.name
    return f"{label.name} (tentative)" if label.tentative else label.name


def label_line(label) -> str:
    """The label with its strongest classes and evidence: ``"dog — Labrador retriever,
    golden retriever … (confidence 0.42, 37 images, 5 classes; tentative)"``."""
    if label is None:
        return ""
    if label.synset is None:
        return label.name
    classes = ", ".join(label.classes)
    more = " …" if label.class_count > len(label.classes) else ""
    members = f" — {classes}{more}" if label.classes and list(label.classes) != [label.name] else ""
    images = f"{label.images} image{'' if label.images == 1 else 's'}"
    counted = f"{label.class_count} class{'' if label.class_count == 1 else 'es'}"
    tentative = "; tentative" if label.tentative else ""
    confidence = format_number(label.confidence)
    return f"{label.name}{members} (confidence {confidence}, {images}, {counted}{tentative})"


def label_json(label) -> dict | None:
    """A label as the page scripts read it: ``{"short": ..., "line": ...}`` (None without one)."""
    if label is None:
        return None
    return {"short": label_short(label), "line": label_line(label)}


# Example labels the overview shows per layer (the most confident firm ones).
OVERVIEW_EXAMPLES = 3


def layer_label_summary(units: Sequence, examples: int = OVERVIEW_EXAMPLES) -> dict | None:
    """A layer's labels counted: ``labelled`` (a firm label), ``tentative``, ``unlabelled``
    (no clear label), and ``examples``: the units (objects with ``index`` and ``label``) of
    the most confident labels, one per distinct name: firm ones first, then tentative ones
    when there are too few firm (a small dataset makes every label tentative), each by
    confidence, highest first (lower channel on ties). None when no unit has a label (no
    attribution in the run)."""
    labelled = [u for u in units if u.label is not None]
    if not labelled:
        return None
    named = [u for u in labelled if u.label.synset is not None]
    firm = [u for u in named if not u.label.tentative]
    chosen, names = [], set()
    for u in sorted(named, key=lambda u: (u.label.tentative, -u.label.confidence, u.index)):
        if u.label.name not in names:
            names.add(u.label.name)
            chosen.append(u)
        if len(chosen) == examples:
            break
    return {
        "labelled": len(firm),
        "tentative": len(named) - len(firm),
        "unlabelled": sum(u.label.synset is None for u in labelled),
        "examples": chosen,
    }
