"""Labelling a unit with the synset that best covers the classes it supports.

The shipped rule, in one sentence: **a unit is labelled with the synset, of those over at
most half of the model's classes, whose share of the unit's positive class attribution most
exceeds the share uniform attribution would give it (its lift, rescaled to [0, 1]), if that
lift reaches 0.2; otherwise it has no clear label.**

Why this one (``DEFAULT_RULE``, measured by bench/labels.py; docs/PERFORMANCE.md, "Labels"):
on the 200 labelled photos it is the candidate that beats its shuffled baseline by the most,
under both seeds tried (held-out precision +0.025 and +0.015 over shuffled labels, p = 0.005
in a permutation test; about half of Lite0's channels labelled), and like every candidate it
names the logit units' own class (100 %). The margins are small, and the photo set says why:
it holds one photo per class, so a held-out photo can confirm a label only above the class
level (dog: 23 photos, bird: 12, vehicle: 18); rules that mostly name single classes there
(the information-content and AUROC variants) can be neither confirmed nor refuted by it.
Lift needs no participation term and no information weighting to refuse a diffuse unit:
uniform attribution has lift 0 everywhere. Synsets over more than half the classes (entity,
object, whole, artifact) are excluded: they hold nearly every photo, so naming them is true
and says nothing.

Inputs are what the reduction already holds (docs/STORE.md, "Reduced store"): per unit its
attribution to each class ``[C, K]`` (the mean attribution towards the predicted class over
the images predicted as the class; NaN where no image was), the images behind each class
``[K]``, and, for the AUROC factor only, each image's activation ``[n, C]`` and class ``[n]``.

Every score is a product of factors in [0, 1], named and swappable (``FACTORS``); a rule
is their names joined by ``*``. With ``p_k = max(attribution_k, 0)`` (NaN counted as 0),
``P = sum_k p_k``, and a synset ``s`` with the classes ``under(s)``:

``coverage``       (a) ``sum_{k in under(s)} p_k / P``: the share of the unit's positive
                   attribution the synset covers.
``lift``           (a') coverage beyond chance: ``(coverage - b) / (1 - b)`` clipped at 0, where
                   ``b`` is the synset's share of the classes with data (uniform attribution
                   covers exactly ``b``; a synset over all of them gets 0).
``participation``  (a) of the classes under ``s`` with data (not NaN), the share that take
                   part: ``p_k >= TAKES_PART x max_k p_k``.
``ic``             (c) ``-log(|under(s)| / K) / log K``: information content, 1 for a single
                   class and 0 for a synset over every class (favours specific synsets).
``auroc``          (b) INVERT's (Bykov et al., NeurIPS 2023) AUROC of the unit's per-image
                   activation for the images of the synset's classes against the rest, from
                   one ranking (Mann-Whitney U), as ``max(0, 2 AUROC - 1)`` (0 at chance).

The label is the best-scoring synset among those covering some positive attribution and at
most ``max_share`` of the model's classes; ties go to the more specific synset (fewer
classes under it, then more ancestors), then the lower synset id. Its confidence is the
score (or a second rule's, ``LabelSettings.confidence``). Below ``min_confidence`` the unit
has no clear label (``Label.synset is None``): diffuse attribution gets no forced word. A
label's evidence is the classes under it that take part and the images predicted as them;
it is *tentative* below ``min_images`` images (default 10): "a label from too little
evidence".

Without a hierarchy (a model with another class set), :func:`flat_hierarchy` makes every
class its own synset, so the rule names the top class when it dominates, or nothing.

NumPy only. 3,120 channels x 1,860 synsets score in well under a second per factor: the
class->synset membership is one matrix ``[K, S]`` and every sum over a synset's classes is
one matrix product.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from functools import cached_property

import numpy as np

from pipeline.labels.hierarchy import ClassHierarchy, Synset
from pipeline.settings import StageSettings

DEFAULT_RULE = "lift"
DEFAULT_CONFIDENCE = None  # the rule's own score
TAKES_PART = 0.1  # a class takes part when its attribution is >= this share of the unit's strongest
NO_LABEL = "no clear label"
AUTO_HIERARCHY = "auto"
FLAT_CHOICE = "class-names"  # labels.hierarchy: each class its own synset
FLAT_SOURCE = "the model's class names"  # ClassHierarchy.source of flat_hierarchy


@dataclasses.dataclass(frozen=True)
class LabelSettings(StageSettings):
    """The ``labels:`` section of the workflow config (defaults: the config schema's)."""

    rule: str = DEFAULT_RULE  # the score that chooses the synset
    confidence: str | None = DEFAULT_CONFIDENCE  # the score reported and thresholded; None: rule's
    min_confidence: float = 0.2  # below it: no clear label
    min_images: int = 10  # a label resting on fewer images is tentative
    max_share: float = 0.5  # a synset over more of the model's classes says nothing: never a label
    member_classes: int = 3  # strongest member classes named with the label
    # Where the synsets come from: "auto" (the shipped WordNet hierarchy for a model whose
    # class names are ImageNet-1k's in order, else the class names), "class-names", or the
    # path of a class hierarchy file (docs/STORE.md, "Class hierarchy").
    hierarchy: str = AUTO_HIERARCHY

    def __post_init__(self):
        for key in ("rule", "confidence"):
            rule = getattr(self, key)
            unknown = [name for name in (rule or "").split("*") if rule is not None and name not in FACTORS]
            if unknown:
                raise ValueError(
                    f"labels.{key}: {rule!r} has an unknown factor {unknown[0]!r} (one of {sorted(FACTORS)})"
                )
        if not 0 < self.max_share <= 1:
            raise ValueError(f"labels.max_share: {self.max_share} is not in (0, 1]")

    @property
    def hierarchy_file(self) -> str | None:
        """The user's hierarchy file, when ``hierarchy`` names one (a workflow input)."""
        return None if self.hierarchy in (AUTO_HIERARCHY, FLAT_CHOICE) else self.hierarchy

    def check_hierarchy_file(self) -> None:
        """Read the hierarchy file now (before any job runs), so a missing or malformed one
        is an error naming it and the key, not a failure after the extraction."""
        if self.hierarchy_file is not None:
            try:
                ClassHierarchy.from_file(self.hierarchy_file)
            except (OSError, ValueError) as error:
                raise ValueError(f"labels.hierarchy: {error}") from None


@dataclasses.dataclass(frozen=True)
class Label:
    """One unit's label: the synset (None: no clear label), its name, its strongest member
    classes (names, by attribution), the confidence in [0, 1] and the evidence."""

    synset: str | None
    name: str
    classes: tuple[str, ...]
    confidence: float
    images: int  # images predicted as the member classes that take part
    class_count: int  # member classes that take part
    tentative: bool
    # The ``classes``' ids in the model's class order (what a store keeps: names repeat in
    # ImageNet, ids do not); not part of the label's identity or its JSON.
    class_ids: tuple[int, ...] = dataclasses.field(default=(), compare=False, repr=False)

    @property
    def text(self) -> str:
        """``"dog: Labrador retriever, golden retriever"`` (the name alone when it is its only
        member class; "no clear label" for none)."""
        if self.synset is None or list(self.classes) in ([], [self.name]):
            return self.name
        return f"{self.name}: {', '.join(self.classes)}"

    def to_dict(self) -> dict:
        fields = dataclasses.asdict(self)
        del fields["class_ids"]
        return {**fields, "classes": list(self.classes), "text": self.text}


@dataclasses.dataclass(frozen=True, eq=False)
class SynsetMatrix:
    """The hierarchy as arrays, synsets in tie-break order (more specific first, then id):
    ``members`` float32 ``[K, S]`` is 1 where class ``k`` is under synset ``s``."""

    hierarchy: ClassHierarchy

    @cached_property
    def ids(self) -> tuple[str, ...]:
        h = self.hierarchy
        used = [wnid for wnid in h.synsets if h.classes_under(wnid)]
        return tuple(sorted(used, key=lambda w: (len(h.classes_under(w)), -len(h.ancestors(w)), w)))

    @cached_property
    def members(self) -> np.ndarray:
        members = np.zeros((len(self.hierarchy.classes), len(self.ids)), np.float32)
        for column, wnid in enumerate(self.ids):
            members[list(self.hierarchy.classes_under(wnid)), column] = 1.0
        return members

    @cached_property
    def sizes(self) -> np.ndarray:
        return self.members.sum(axis=0)

    @cached_property
    def information(self) -> np.ndarray:
        """``-log(|under(s)| / K) / log K`` (1 for a single class; 0 over every class)."""
        classes = self.members.shape[0]
        if classes < 2:
            return np.ones(len(self.ids), np.float32)
        return (-np.log(self.sizes / classes) / np.log(classes)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Evidence:
    """What one layer's labels rest on (``C`` units, ``K`` classes, ``n`` images)."""

    attribution: np.ndarray  # [C, K], NaN: no image predicted as the class
    counts: np.ndarray  # [K] images per class, or [C, K] per unit (an atlas cell's own images)
    activations: np.ndarray | None = None  # [n, C] per-image activation (AUROC only)
    image_classes: np.ndarray | None = None  # [n] class of each image, -1: none (AUROC only)

    @cached_property
    def positive(self) -> np.ndarray:
        return np.nan_to_num(np.maximum(self.attribution, 0), nan=0.0).astype(np.float32)


Factor = Callable[[Evidence, SynsetMatrix], np.ndarray]


def coverage(evidence: Evidence, synsets: SynsetMatrix) -> np.ndarray:
    positive = evidence.positive
    total = positive.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (positive @ synsets.members) / total, 0.0)


def lift(evidence: Evidence, synsets: SynsetMatrix) -> np.ndarray:
    """Coverage beyond chance: ``(coverage - b) / (1 - b)`` clipped at 0, with ``b`` the
    synset's share of the unit's observed classes (what uniform attribution would give)."""
    observed = (~np.isnan(evidence.attribution)).astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        base = (observed @ synsets.members) / observed.sum(axis=1, keepdims=True)
        beyond = (coverage(evidence, synsets) - base) / (1 - base)
    return np.clip(np.nan_to_num(beyond, nan=0.0), 0, 1)


def participation(evidence: Evidence, synsets: SynsetMatrix) -> np.ndarray:
    positive = evidence.positive
    strongest = positive.max(axis=1, keepdims=True)
    takes_part = ((positive >= TAKES_PART * strongest) & (positive > 0)).astype(np.float32)
    observed = (~np.isnan(evidence.attribution)).astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = (takes_part @ synsets.members) / (observed @ synsets.members)
    return np.nan_to_num(share, nan=0.0)


def information(evidence: Evidence, synsets: SynsetMatrix) -> np.ndarray:
    return np.broadcast_to(synsets.information, (evidence.attribution.shape[0], len(synsets.ids)))


def auroc(evidence: Evidence, synsets: SynsetMatrix) -> np.ndarray:
    """``max(0, 2 AUROC - 1)`` per unit and synset; 0 where the synset has no image or all."""
    if evidence.activations is None or evidence.image_classes is None:
        raise ValueError("the auroc factor needs per-image activations and image classes")
    area = auroc_table(evidence.activations, evidence.image_classes, synsets.members)
    return np.clip(np.nan_to_num(2 * area - 1, nan=0.0), 0, 1)


def auroc_table(activations, image_classes, members) -> np.ndarray:
    """AUROC ``[C, S]`` of each unit's activation ``[n, C]`` separating the images whose class
    (``[n]``, -1: none, left out) is under each synset (``members [K, S]``) from the rest:
    the Mann-Whitney U over one ranking per unit (ties get average ranks). NaN activations
    rank lowest; NaN where a synset has no image or every image."""
    image_classes = np.asarray(image_classes)
    known = image_classes >= 0
    values = np.nan_to_num(np.asarray(activations, np.float64)[known], nan=-np.inf)
    n = values.shape[0]
    ordered = np.sort(values, axis=0)
    ranks = np.empty_like(values)
    for unit in range(values.shape[1]):  # average ranks: below + (equal + 1) / 2
        below = np.searchsorted(ordered[:, unit], values[:, unit], "left")
        up_to = np.searchsorted(ordered[:, unit], values[:, unit], "right")
        ranks[:, unit] = below + (up_to - below + 1) / 2
    under = members[image_classes[known]].astype(np.float64)  # [n, S]: image under synset
    positives = under.sum(axis=0)
    negatives = n - positives
    with np.errstate(invalid="ignore", divide="ignore"):
        u = ranks.T @ under - positives * (positives + 1) / 2
        return np.where((positives > 0) & (negatives > 0), u / (positives * negatives), np.nan)


FACTORS: dict[str, Factor] = {
    "coverage": coverage,
    "lift": lift,
    "participation": participation,
    "ic": information,
    "auroc": auroc,
}


def score(evidence: Evidence, synsets: SynsetMatrix, rule: str = DEFAULT_RULE) -> np.ndarray:
    """``[C, S]`` scores in [0, 1] of the rule (factor names joined by ``*``); 0 for a synset
    that covers none of the unit's positive attribution."""
    names = rule.split("*")
    unknown = [name for name in names if name not in FACTORS]
    if unknown:
        raise ValueError(f"label rule {rule!r}: unknown factor {unknown[0]!r} (one of {sorted(FACTORS)})")
    covers = (evidence.positive @ synsets.members) > 0
    result = covers.astype(np.float64)
    for name in names:
        result = result * FACTORS[name](evidence, synsets)
    return result


def label_units(
    hierarchy: ClassHierarchy,
    evidence: Evidence,
    settings: LabelSettings = LabelSettings(),
    class_names: Sequence[str] | None = None,
    synsets: SynsetMatrix | None = None,
) -> list[Label]:
    """Every unit's :class:`Label` (``class_names`` default to the hierarchy's names)."""
    synsets = synsets or SynsetMatrix(hierarchy)
    attribution = np.asarray(evidence.attribution, np.float32)
    if attribution.shape[1] != len(hierarchy.classes):
        raise ValueError(
            f"attribution has {attribution.shape[1]} classes, the hierarchy {len(hierarchy.classes)}"
        )
    too_broad = synsets.sizes > settings.max_share * len(hierarchy.classes)
    scores = np.where(too_broad, 0.0, score(evidence, synsets, settings.rule))
    # Rounding makes equal sums computed in another order tie; argmax then takes the first
    # column of the tie order (more specific, then lower id).
    best = np.argmax(np.round(scores, 9), axis=1)
    if settings.confidence not in (None, settings.rule):
        scores = np.where(too_broad, 0.0, score(evidence, synsets, settings.confidence))
    names = list(class_names) if class_names is not None else [hierarchy.name(w) for w in hierarchy.classes]
    positive = evidence.positive
    strongest = positive.max(axis=1)
    counts = np.asarray(evidence.counts)
    labels = []
    for unit, column in enumerate(best):
        confidence = float(scores[unit, column])
        if not confidence >= settings.min_confidence:
            labels.append(Label(None, NO_LABEL, (), confidence, 0, 0, False))
            continue
        members = np.flatnonzero(synsets.members[:, column])
        taking_part = members[
            (positive[unit, members] > 0) & (positive[unit, members] >= TAKES_PART * strongest[unit])
        ]
        order = taking_part[np.argsort(-positive[unit, taking_part], kind="stable")]
        images = int((counts[unit] if counts.ndim == 2 else counts)[taking_part].sum())
        wnid = synsets.ids[column]
        labels.append(
            Label(
                wnid,
                hierarchy.name(wnid),
                tuple(names[k] for k in order[: settings.member_classes]),
                confidence,
                images,
                len(taking_part),
                images < settings.min_images,
                tuple(int(k) for k in order[: settings.member_classes]),
            )
        )
    return labels


def flat_hierarchy(class_names: Sequence[str]) -> ClassHierarchy:
    """A hierarchy of the classes alone (each its own synset, no parents), for a model
    whose classes are not WordNet synsets: the label is then the top class, when it dominates."""
    ids = tuple(f"class:{index}" for index in range(len(class_names)))
    synsets = {wnid: Synset(wnid, name, ()) for wnid, name in zip(ids, class_names)}
    return ClassHierarchy(ids, synsets, source=FLAT_SOURCE)
