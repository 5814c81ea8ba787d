"""Search across the atlas: the index's entries and the one ranking rule.

The site's search box (``site/static/search.js``) and :meth:`pipeline.query.Results.search`
(``model-atlas query RUN search "dog"``) rank with the same rule, written twice (here and
in JavaScript) and checked against one table of cases, ``tests/data/search_ranking.json``.

An index is a list of :class:`Entry`: layers, channels (``blocks.3.0:5``), classes, the
class hierarchy's synsets and images. A query (lower-cased, spaces squeezed; ``layer 5`` and
``alias:5`` read as the channel ``layer:5``) matches an entry's *terms* (its name and
synonyms, lower case):

1. **exact**: a term is the query;
2. **hyponym**: the entry lies under an entry that matched exactly (a class under the
   synset "dog"; later, a channel labelled with a kind of dog), ``via`` names that entry;
3. **prefix**: a term starts with the query;
4. **substring**: a term contains it.

Ties: kind order (:data:`KINDS`), then entries the run has data on (``seen``: a class that
some image is predicted as; every layer, channel and image) before the rest, then higher
label confidence, then name in natural order (``conv:2`` before ``conv:10``), then index
order. Synsets only lead to what lies under them: they are matched, never listed (the
site has no page for "dog"; the breeds are listed, each "a kind of dog").

Pure: no files, no stores. A channel's ``label`` is its label's synset name (empty: no clear
label, or no attribution), ``confidence`` the label's, ``under`` the entries of that
synset and every synset above it (:attr:`Run.labels`), and ``detail`` says "tentative
label" when the label rests on too few images.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence

from pipeline.labels.hierarchy import ClassHierarchy

FORMAT = "model-atlas.search-index"
VERSION = 1
KINDS = ("layer", "channel", "class", "synset", "image")
MATCHES = ("exact", "hyponym", "prefix", "substring")
LISTED_KINDS = frozenset(KINDS) - {"synset"}
DEFAULT_RESULTS = 20
# "layer:5", "layer 5", "layer : 5": a channel when the first part names a layer.
CHANNEL_QUERY = re.compile(r"^(.+?)\s*[:\s]\s*(\d+)$")


@dataclasses.dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    synonyms: tuple[str, ...] = ()  # other names it answers to (aliases, WordNet lemmas)
    under: tuple[int, ...] = ()  # indices of the entries it lies under (a class's synsets)
    seen: bool = True  # False: the run has no data on it (a class never predicted)
    url: str | None = None  # site path of its page (None: no page)
    thumb: str | None = None  # site path of its thumbnail
    label: str = ""  # a channel's label (empty until labelled)
    confidence: float | None = None  # the label's confidence
    detail: str = ""  # a short description shown beside the name ("64 channels")

    @property
    def terms(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(normalized(t) for t in (self.name, *self.synonyms)))

    def to_json(self) -> dict:
        """The entry as the site's index writes it: defaults left out, to keep it small."""
        out = {"kind": self.kind, "name": self.name}
        for field in dataclasses.fields(self)[2:]:
            value = getattr(self, field.name)
            if value != field.default:
                out[field.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_json(cls, value: Mapping) -> Entry:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(value) - fields
        if unknown:
            raise ValueError(f"search index entry {value.get('name')!r}: unknown keys {sorted(unknown)}")
        tuples = {k: tuple(value[k]) for k in ("synonyms", "under") if k in value}
        return cls(**{**value, **tuples})


def normalized(text: str) -> str:
    """Lower case, spaces squeezed and trimmed: what queries and terms are compared as."""
    return " ".join(str(text).lower().split())


def natural_key(name: str) -> list:
    """``conv:10`` after ``conv:2``: runs of digits compare as numbers (str, int, str, ...)."""
    parts = re.split(r"(\d+)", normalized(name))
    return [int(p) if i % 2 else p for i, p in enumerate(parts)]


def canonical_query(query: str, layers: Mapping[str, str]) -> str:
    """The normalized query, with ``layer 5``/``alias:5`` rewritten as ``layer:5``.

    ``layers`` maps each normalized layer name and alias to its layer's normalized name."""
    q = normalized(query)
    found = CHANNEL_QUERY.match(q)
    if found and found.group(1) in layers:
        return f"{layers[found.group(1)]}:{int(found.group(2))}"
    return q


def layer_names(entries: Sequence[Entry]) -> dict[str, str]:
    """Normalized layer name or alias -> normalized layer name, from the layer entries."""
    out = {}
    for e in entries:
        if e.kind == "layer":
            out.update({term: normalized(e.name) for term in e.terms})
    return out


def _term_match(terms: Iterable[str], q: str) -> int | None:
    best = None
    for term in terms:
        rank = 0 if term == q else 2 if term.startswith(q) else 3 if q in term else None
        if rank is not None and (best is None or rank < best):
            best = rank
    return best


def search(entries: Sequence[Entry], query: str, k: int = DEFAULT_RESULTS) -> list[dict]:
    """The ``k`` best entries for ``query``: ``{"entry": index, "match": name, "via": index or
    None}``, best first (the rule in the module's docstring); [] for an empty query."""
    q = canonical_query(query, layer_names(entries))
    if not q:
        return []
    ranks = [_term_match(e.terms, q) for e in entries]
    exact = {i for i, r in enumerate(ranks) if r == 0}
    found = []
    for i, e in enumerate(entries):
        rank, via = ranks[i], None
        if rank != 0:
            above = [u for u in e.under if u in exact]
            if above:
                rank, via = 1, min(above)
        if rank is not None and e.kind in LISTED_KINDS:
            found.append((rank, i, via))
    found.sort(key=lambda f: _order(entries[f[1]], f[0], f[1]))
    return [{"entry": i, "match": MATCHES[rank], "via": via} for rank, i, via in found[:k]]


def _order(e: Entry, rank: int, index: int) -> tuple:
    confidence = -e.confidence if e.confidence is not None else float("inf")
    return (rank, KINDS.index(e.kind), not e.seen, confidence, natural_key(e.name), index)


# ---------------------------------------------------------------------------------
# The entries of a run
# ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """What a run's index is made of (the site fills in pages and thumbnails; the query
    API leaves them out: neither changes the ranking)."""

    layers: Sequence[tuple[str, int]]  # (name, channels) in model order
    aliases: Mapping[str, str]  # alias -> layer name
    class_names: Sequence[str]
    seen_classes: frozenset[int]  # classes some image is predicted as
    images: Sequence[str]  # featured image ids
    hierarchy: ClassHierarchy | None = None
    # layer -> one label per channel (pipeline/labels/layers.py), or None: unlabelled
    labels: Mapping[str, Sequence | None] = dataclasses.field(default_factory=dict)


def run_entries(run: Run, pages=None) -> list[Entry]:
    """The index of a run: layers, channels, synsets, classes, images (in that order).

    ``pages`` (optional) gives the site's paths: an object with ``layer(name)``,
    ``channel(layer, c)``, ``thumb(layer, c)``, ``klass(id)`` and ``image(id)``, each a
    site path or None."""
    entries: list[Entry] = []
    for name, channels in run.layers:
        aliases = tuple(sorted(a for a, target in run.aliases.items() if target == name))
        url = pages.layer(name) if pages else None
        entries.append(Entry("layer", name, aliases, url=url, detail=f"{channels} channels"))
    for name, channels in run.layers:
        for c in range(channels):
            url, thumb = (pages.channel(name, c), pages.thumb(name, c)) if pages else (None, None)
            entries.append(Entry("channel", f"{name}:{c}", url=url, thumb=thumb))
    synset_entry = _synset_entries(run, entries)
    class_entry = {}
    for class_id, name in enumerate(run.class_names):
        if not name:  # a class known by its number only
            continue
        class_entry[class_id] = len(entries)
        synonyms, under = (), ()
        if run.hierarchy is not None:
            wnid = run.hierarchy.classes[class_id]
            synonyms = tuple(run.hierarchy.synsets[wnid].lemmas)
            under = tuple(sorted(synset_entry[a] for a in run.hierarchy.ancestors(wnid) if a in synset_entry))
        seen = class_id in run.seen_classes
        url = pages.klass(class_id) if pages and seen else None
        detail = "" if seen else "never predicted"
        entries.append(Entry("class", name, synonyms, under, seen=seen, url=url, detail=detail))
    for image_id in run.images:
        entries.append(Entry("image", image_id, url=pages.image(image_id) if pages else None))
    _add_channel_labels(run, entries, synset_entry, class_entry)
    return entries


def _add_channel_labels(run: Run, entries: list[Entry], synset_entry: dict, class_entry: dict) -> None:
    """Give each labelled channel its label, confidence and ``under``: the entries of the
    label's synset and of every synset above it (so "dog" finds the channels labelled with
    any kind of dog). A label's synset is a WordNet id, or ``class:<k>`` from a model's
    class names alone (pipeline/labels/rule.py, flat_hierarchy)."""
    entry_of = dict(synset_entry)
    if run.hierarchy is not None:
        entry_of.update({run.hierarchy.classes[k]: i for k, i in class_entry.items()})
    entry_of.update({f"class:{k}": i for k, i in class_entry.items()})
    channel_index = len(run.layers)
    for name, channels in run.layers:
        labels = run.labels.get(name)
        for c in range(channels):
            label = labels[c] if labels is not None else None
            if label is not None and label.synset is not None:
                wnids = [label.synset]
                if run.hierarchy is not None and label.synset in run.hierarchy.synsets:
                    wnids += sorted(run.hierarchy.ancestors(label.synset))
                under = tuple(sorted({entry_of[w] for w in wnids if w in entry_of}))
                entries[channel_index] = dataclasses.replace(
                    entries[channel_index],
                    label=label.name,
                    confidence=round(float(label.confidence), 6),
                    under=under,
                    detail="tentative label" if label.tentative else "",
                )
            channel_index += 1


def _synset_entries(run: Run, entries: list[Entry]) -> dict[str, int]:
    """Add an entry per synset above the classes (not the classes' own); wnid -> its index."""
    if run.hierarchy is None:
        return {}
    classes = set(run.hierarchy.classes)
    out = {}
    for wnid in sorted(run.hierarchy.synsets):
        if wnid in classes:
            continue
        synset = run.hierarchy.synsets[wnid]
        out[wnid] = len(entries)
        count = len(run.hierarchy.classes_under(wnid))
        entries.append(Entry("synset", synset.name, tuple(synset.lemmas), detail=f"{count} classes"))
    return out


def index_json(entries: Sequence[Entry]) -> dict:
    """The index as the site ships it (``search-index.js``)."""
    return {"format": FORMAT, "version": VERSION, "entries": [e.to_json() for e in entries]}


def from_index_json(value: Mapping) -> list[Entry]:
    if value.get("format") != FORMAT or value.get("version") != VERSION:
        raise ValueError(
            f"search index: format {value.get('format')!r} version {value.get('version')!r}, "
            f"expected {FORMAT!r} version {VERSION}"
        )
    return [Entry.from_json(e) for e in value["entries"]]
