"""The compare job: two or more runs' activations stores in, ``compare.h5`` out.

For each pair of runs (A before B, in the order given):

1. **CKA** of every layer of A with every layer of B, on each image's spatial mean of each
   channel (the stores' per-image ``mean``), by the minibatch unbiased HSIC estimator
   (:mod:`pipeline.compare.cka`): the images in a seeded random order, ``batch_size`` at a
   time, each minibatch read once for every layer of every run.
2. **The layer pairs that matter**: each layer with its most CKA-similar layer of the other
   run, both ways (``layer_pairs: best``; two runs of one architecture also pair each layer
   with itself, so that every channel's correlation with itself is shown), or the pairs
   the config names.
3. **Unit matches** of each such pair on the per-image maxima (:mod:`pipeline.compare.match`),
   with the chance threshold calibrated on each run's layer over split halves of the images.

The runs are named by their folders (``results/<run>/activations.h5``). Runs over different
images are refused with a message naming both.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.compare import cka as cka_
from pipeline.compare import match
from pipeline.compare.settings import CompareSettings
from pipeline.store import provenance
from pipeline.store.activations_reader import ActivationsStore
from pipeline.store.compare import CKATable, LayerMatches, MemberRun, PairComparison, write_comparison

log = logging.getLogger(__name__)

POOLED = "mean"  # CKA: each image's spatial mean of each channel
RESPONSE = "max"  # matching: each image's spatial maximum of each channel


class Member:
    """One run being compared: its store, its name and its rows in the shared image order."""

    def __init__(self, path: str | os.PathLike, store: ActivationsStore):
        self.path, self.store = Path(path), store
        self.run = self.path.parent.name
        self.layers = {name: info["channels"] for name, info in store.layers.items()}
        self.rows = np.arange(store.num_images)  # set by align_images
        self._chance: dict[str, match.ChanceLevel] = {}

    def describe(self) -> str:
        return f"run {self.run} ({self.path})"

    def response(self, layer: str):
        """Lazy ``[N, C]`` per-image maxima of ``layer``, in the shared image order."""
        values = self.store.per_image(layer, RESPONSE)
        identity = np.array_equal(self.rows, np.arange(len(self.rows)))
        return values if identity else values[self.rows]

    def chance(self, layer: str, seed: int) -> match.ChanceLevel:
        if layer not in self._chance:
            self._chance[layer] = match.chance_level(self.response(layer), seed)
        return self._chance[layer]


def align_images(members: Sequence[Member]) -> list[str]:
    """The image ids all ``members`` extracted, in the first one's order; sets each member's
    ``rows`` to its rows in that order. Runs over different images are refused, naming both."""
    first = members[0]
    ids = [str(i) for i in first.store.images["image_id"]]
    for other in members[1:]:
        theirs = [str(i) for i in other.store.images["image_id"]]
        only_first, only_other = sorted(set(ids) - set(theirs)), sorted(set(theirs) - set(ids))
        if only_first or only_other:
            raise ValueError(
                f"{first.describe()} and {other.describe()} are over different images: "
                f"{len(only_first)} only in {first.run} ({', '.join(only_first[:3]) or 'none'}), "
                f"{len(only_other)} only in {other.run} ({', '.join(only_other[:3]) or 'none'}); "
                "a comparison needs the same dataset (and the same skipped files) in every run"
            )
        position = {image_id: row for row, image_id in enumerate(theirs)}
        other.rows = np.asarray([position[i] for i in ids], np.int64)
    return ids


def cka_tables(members: Sequence[Member], settings: CompareSettings, images: int) -> dict:
    """``{(i, j): [L_i, L_j]}``: the minibatch CKA of every pair of members ``i < j``; each
    minibatch is read once per layer of every member."""
    pairs = [(i, j) for i in range(len(members)) for j in range(i + 1, len(members))]
    found = {pair: cka_.MinibatchCKA() for pair in pairs}
    batches = cka_.minibatches(images, settings.batch_size, settings.seed)
    if not batches:
        raise ValueError(f"CKA needs at least {cka_.SMALLEST_BATCH} images; the runs have {images}")
    for number, rows in enumerate(batches, 1):
        grams = [
            cka_.gram_batch([m.store.per_image_rows(layer, POOLED, m.rows[rows]) for layer in m.layers])
            for m in members
        ]
        for i, j in pairs:
            found[i, j].update(grams[i], grams[j])
        if number % 20 == 0 or number == len(batches):
            log.info("CKA: minibatch %d of %d (%d images each)", number, len(batches), settings.batch_size)
    return {pair: acc.result() for pair, acc in found.items()}


def matched_layer_pairs(table: CKATable, settings: CompareSettings) -> list[tuple[str, str]]:
    """The layer pairs to match (see the module docstring), in A's then B's execution order."""
    names_a, names_b = list(table.layers_a), list(table.layers_b)
    if settings.layer_pairs != "best":
        chosen = [tuple(pair) for pair in settings.layer_pairs]
        for a, b in chosen:
            if a not in table.layers_a or b not in table.layers_b:
                raise ValueError(
                    f"compare.layer_pairs names {a} ~ {b}; run {table.run_a} has layers "
                    f"{', '.join(names_a)}; run {table.run_b} has {', '.join(names_b)}"
                )
        return sorted(set(chosen), key=lambda p: (names_a.index(p[0]), names_b.index(p[1])))
    values = np.nan_to_num(np.asarray(table.values, np.float64), nan=-np.inf)
    chosen = {(names_a[i], names_b[int(np.argmax(values[i]))]) for i in range(len(names_a))}
    chosen |= {(names_a[int(np.argmax(values[:, j]))], names_b[j]) for j in range(len(names_b))}
    if table.same_architecture:
        chosen |= {(n, n) for n in names_a if table.layers_b.get(n) == table.layers_a[n]}
    return sorted(chosen, key=lambda p: (names_a.index(p[0]), names_b.index(p[1])))


def layer_matches(a: Member, b: Member, layers: tuple[str, str], table: CKATable, settings) -> LayerMatches:
    """The unit matches of one layer pair (:mod:`pipeline.compare.match`)."""
    layer_a, layer_b = layers
    corr = match.correlation(a.response(layer_a), b.response(layer_b))
    images = len(a.rows)
    levels = [a.chance(layer_a, settings.seed), b.chance(layer_b, settings.seed)]
    threshold = match.chance_threshold(levels, images, settings.chance_quantile)
    best_a, best_a_corr = match.top_matches(corr, settings.top_k)
    best_b, best_b_corr = match.top_matches(corr.T, settings.top_k)
    pairs, pair_corr = match.one_to_one(corr)
    buddies_a, buddies_b = match.best_buddies(corr)
    aligned = table.same_architecture and layer_a == layer_b and corr.shape[0] == corr.shape[1]
    return LayerMatches(
        layer_a=layer_a,
        layer_b=layer_b,
        cka=float(table.value(layer_a, layer_b)),
        threshold=threshold,
        chance_quantile=float(settings.chance_quantile),
        images=images,
        best_a=best_a,
        best_a_corr=best_a_corr,
        best_b=best_b,
        best_b_corr=best_b_corr,
        pairs=pairs,
        pair_corr=pair_corr,
        buddies_a=buddies_a,
        buddies_b=buddies_b,
        matched_a=best_a_corr[:, 0] >= threshold,
        matched_b=best_b_corr[:, 0] >= threshold,
        self_corr=np.diagonal(corr).astype(np.float32) if aligned else None,
    )


def run_compare(
    settings: CompareSettings, activations: Sequence[str | os.PathLike], output: str | os.PathLike
) -> dict:
    """Compare the runs whose activations stores are ``activations`` (two or more, each
    ``results/<run>/activations.h5``) into ``output``. Returns counts for the log."""
    if len(activations) < 2:
        raise ValueError(f"a comparison needs two or more runs; got {len(activations)}")
    with contextlib.ExitStack() as stack:
        members = [Member(path, stack.enter_context(ActivationsStore(path))) for path in activations]
        names = [m.run for m in members]
        if len(set(names)) != len(names):
            raise ValueError(f"the compared runs must have different names (their folders); got {names}")
        ids = align_images(members)
        log.info("comparing %s over %d images", ", ".join(names), len(ids))
        tables = cka_tables(members, settings, len(ids))
        pairs = [_pair(members[i], members[j], values, settings) for (i, j), values in tables.items()]
        described = [
            MemberRun(m.run, dict(m.store.model), str(m.path), m.store.config_hash, len(ids)) for m in members
        ]
        record = provenance(
            stage="compare",
            settings=settings.subset(CompareSettings.COMPARE_KEYS),
            model={
                "name": " vs ".join(str(m.store.model.get("name")) for m in members),
                "weights": " vs ".join(str(m.store.model.get("weights")) for m in members),
            },
            derived={"runs": names, "cka_quantity": POOLED, "match_quantity": RESPONSE},
            inputs={m.run: m.store.config_hash for m in members},
        )
        write_comparison(output, described, ids, pairs, record)
    return {"runs": len(members), "pairs": len(pairs), "layer_pairs": sum(len(p.matches) for p in pairs)}


def _pair(a: Member, b: Member, values: np.ndarray, settings: CompareSettings) -> PairComparison:
    batches = len(cka_.minibatches(len(a.rows), settings.batch_size, settings.seed))
    table = CKATable(
        run_a=a.run,
        run_b=b.run,
        layers_a=a.layers,
        layers_b=b.layers,
        values=values.astype(np.float32),
        same_architecture=a.store.model.get("name") == b.store.model.get("name"),
        batch_size=settings.batch_size,
        batches=batches,
    )
    found = []
    for layers in matched_layer_pairs(table, settings):
        found.append(layer_matches(a, b, layers, table, settings))
        s = found[-1].summary()
        log.info(
            "%s ~ %s: CKA %.3f, threshold %.3f, matched %d/%d and %d/%d channels",
            *layers,
            s["cka"],
            s["threshold"],
            s["matched_a"],
            s["channels_a"],
            s["matched_b"],
            s["channels_b"],
        )
    return PairComparison(table, found)
