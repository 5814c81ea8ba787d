"""The class hierarchy that unit labels are named from (docs/STORE.md, "Class hierarchy").

A classifier's classes are leaves (or inner nodes) of a graph of *synsets*: for ImageNet-1k,
WordNet 3.0's noun hypernym graph (Labrador retriever < retriever < sporting dog < ... < dog
< canine < ... < entity, and dog < domestic animal too: a synset may have several parents).
A label names the synset that best covers the classes a unit supports, so what this module
answers is: which synsets are above a class, and which classes are below a synset.

The shipped file ``data/hierarchy/imagenet1k.json`` is generated from WordNet 3.0 by
``tools/make_class_hierarchy.py``; a model with another class set may give its own file in
the same format (``ClassHierarchy.from_file``). No torch, no network.

>>> h = ClassHierarchy.from_dict({
...     "format": "model-atlas.class-hierarchy", "format_version": 1,
...     "classes": ["lab", "tabby"],
...     "synsets": {"lab": {"name": "Labrador", "parents": ["dog"]},
...                 "tabby": {"name": "tabby", "parents": ["cat"]},
...                 "dog": {"name": "dog", "parents": ["animal"]},
...                 "cat": {"name": "cat", "parents": ["animal"]},
...                 "animal": {"name": "animal", "parents": []}}})
>>> sorted(h.ancestors("lab"))
['animal', 'dog', 'lab']
>>> h.classes_under("animal"), h.classes_under("dog")
((0, 1), (0,))
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path

FORMAT = "model-atlas.class-hierarchy"
VERSIONS = (1,)
IMAGENET1K = Path(__file__).resolve().parents[2] / "data" / "hierarchy" / "imagenet1k.json"


def _words(text: str) -> str:
    return " ".join(str(text).lower().split())


def imagenet_hierarchy_for(class_names: Sequence[str]) -> ClassHierarchy | None:
    """The shipped ImageNet-1k hierarchy when ``class_names`` are its 1,000 classes in its
    order (:meth:`ClassHierarchy.names_match`), else None: the one test of whether a model's
    classes are ImageNet's, for its labels and its search alike."""
    if len(class_names) != 1000:
        return None
    hierarchy = ClassHierarchy.from_file(IMAGENET1K)
    return hierarchy if hierarchy.names_match(class_names) else None


def chosen_hierarchy(class_names: Sequence[str], choice: str = "auto") -> ClassHierarchy | None:
    """The hierarchy a run's labels and search use, by the ``labels.hierarchy`` setting:
    ``"auto"`` the shipped one when the classes are ImageNet-1k's (else None),
    ``"class-names"`` None (each class its own synset), else the path of a hierarchy file,
    which must have one class per model output (an error naming the file otherwise)."""
    if choice == "auto":
        return imagenet_hierarchy_for(class_names)
    if choice == "class-names":
        return None
    hierarchy = ClassHierarchy.from_file(choice)
    if len(hierarchy.classes) != len(class_names):
        raise ValueError(
            f"{choice}: the class hierarchy has {len(hierarchy.classes)} classes, the model "
            f"{len(class_names)} (labels.hierarchy: 'classes' lists one synset per model output, in order)"
        )
    return hierarchy


@dataclasses.dataclass(frozen=True)
class Synset:
    id: str
    name: str
    parents: tuple[str, ...]
    lemmas: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, eq=False)
class ClassHierarchy:
    """``classes[i]`` is the synset id of the model's class ``i``; ``synsets`` holds it and
    every ancestor."""

    classes: tuple[str, ...]
    synsets: Mapping[str, Synset]
    source: str = ""

    @classmethod
    def from_dict(cls, data: Mapping, where: str = "class hierarchy") -> ClassHierarchy:
        if data.get("format") != FORMAT:
            raise ValueError(f"{where}: format is {data.get('format')!r}, expected {FORMAT!r}")
        if data.get("format_version") not in VERSIONS:
            raise ValueError(
                f"{where}: format_version {data.get('format_version')!r} is not one of {VERSIONS}"
            )
        synsets = {}
        for wnid, entry in data["synsets"].items():
            try:
                synsets[wnid] = Synset(
                    wnid, entry["name"], tuple(entry["parents"]), tuple(entry.get("lemmas", ()))
                )
            except KeyError as missing:
                raise ValueError(f"{where}: synset {wnid!r} has no {missing}") from None
        for wnid in [*data["classes"], *(p for s in synsets.values() for p in s.parents)]:
            if wnid not in synsets:
                raise ValueError(f"{where}: synset {wnid!r} is named but not defined under 'synsets'")
        hierarchy = cls(tuple(data["classes"]), synsets, data.get("source", ""))
        hierarchy.check_acyclic(where)
        return hierarchy

    @classmethod
    def from_file(cls, path=IMAGENET1K) -> ClassHierarchy:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: class hierarchy file not found") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not JSON ({error})") from None
        return cls.from_dict(data, where=str(path))

    def check_acyclic(self, where: str) -> None:
        """A parent loop would make every ancestor query wrong: refuse it, naming a synset on it."""
        state: dict[str, int] = {}  # 1: being visited, 2: done

        def visit(wnid: str) -> None:
            state[wnid] = 1
            for parent in self.synsets[wnid].parents:
                if state.get(parent) == 1:
                    raise ValueError(f"{where}: the parents of synset {parent!r} loop back to it")
                if parent not in state:
                    visit(parent)
            state[wnid] = 2

        for wnid in self.synsets:
            if wnid not in state:
                visit(wnid)

    def ancestors(self, wnid: str) -> frozenset[str]:
        """The synset and every synset above it, along every parent."""
        return self._ancestors[wnid]

    def classes_under(self, wnid: str) -> tuple[int, ...]:
        """The class indices whose synset is ``wnid`` or below it, in class order."""
        return self._classes_under.get(wnid, ())

    def name(self, wnid: str) -> str:
        return self.synsets[wnid].name

    def paths_to_root(self, wnid: str) -> list[tuple[str, ...]]:
        """Every path from ``wnid`` up to a synset without parents (several where a synset has
        several parents), each starting at ``wnid``."""
        parents = self.synsets[wnid].parents
        if not parents:
            return [(wnid,)]
        return [(wnid, *path) for parent in parents for path in self.paths_to_root(parent)]

    def names_match(self, class_names: Sequence[str]) -> bool:
        """Whether ``class_names`` are this hierarchy's classes, in its order: each name is
        its synset's name or one of its lemmas, or begins with one and a space (torchvision's
        ``crane bird`` and ``maillot tank suit`` tell two synsets apart), case aside."""
        if len(class_names) != len(self.classes):
            return False
        for name, wnid in zip(class_names, self.classes):
            synset = self.synsets[wnid]
            words = {_words(w) for w in (synset.name, *synset.lemmas)}
            name = _words(name)
            if name not in words and not any(name.startswith(w + " ") for w in words):
                return False
        return True

    @cached_property
    def _ancestors(self) -> dict[str, frozenset[str]]:
        found: dict[str, frozenset[str]] = {}

        def up(wnid: str) -> frozenset[str]:
            if wnid not in found:
                found[wnid] = frozenset({wnid}).union(*(up(p) for p in self.synsets[wnid].parents))
            return found[wnid]

        for wnid in self.synsets:
            up(wnid)
        return found

    @cached_property
    def _classes_under(self) -> dict[str, tuple[int, ...]]:
        under: dict[str, list[int]] = {}
        for index, wnid in enumerate(self.classes):
            for ancestor in self.ancestors(wnid):
                under.setdefault(ancestor, []).append(index)
        return {wnid: tuple(indices) for wnid, indices in under.items()}
