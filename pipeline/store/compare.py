"""The comparison store ``results/<compare run>/compare.h5``: two or more runs over the same
images, compared layer by layer (CKA) and unit by unit (matches). Layout (docs/STORE.md,
"Comparison store"), format ``model-atlas.compare`` version 1::

    /runs                   table run, model, weights, checksum, activations, activations_hash, images
    /images                 table image_id: the images every run extracted (the first run's order)
    /pairs/<run A>/<run B>/ one per pair of runs (A listed before B in /runs)
        layers_a, layers_b  tables name, channels: each run's layers in execution order
        cka                 float32 [L_A, L_B]  linear CKA of every layer pair (NaN: a constant layer)
        attrs               same_architecture, batch_size, batches, estimator
        matches/<layer A>/<layer B>/    one per matched layer pair
            best_a, best_a_corr     int32 / float32 [C_A, k]  each A channel's k best B channels
            best_b, best_b_corr     int32 / float32 [C_B, k]  and the reverse
            pairs, pair_corr        int32 [M, 2] (A, B) / float32 [M]  the one-to-one matching
            buddies_a, buddies_b    int32 [C_A] / [C_B]  best buddy in the other layer, -1 for none
            matched_a, matched_b    bool [C_A] / [C_B]   best correlation >= threshold
            self_corr               float32 [C]  channel c of A with channel c of B (same
                                                 architecture and layer only; else absent)
            attrs                   cka, threshold, chance_quantile, images

The reader :class:`CompareStore` answers in records (:class:`CKATable`,
:class:`LayerMatches`); :func:`open_comparison` opens a compare run's folder or the file.
No torch here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pipeline.store._format import (
    StoreError,
    StoreReader,
    atomic_h5,
    json_number,
    open_h5_handle,
    read_strings,
    read_table,
    settings_of,
    write_table,
)
from pipeline.store._provenance import ProvenanceRecord

KIND, VERSIONS, VERSION = "compare", (1,), 1
FILE_NAME = "compare.h5"
ESTIMATOR = "minibatch unbiased HSIC (Nguyen et al. 2021) on per-image spatial means"


@dataclasses.dataclass(frozen=True)
class MemberRun:
    """One compared run: its name, model (``name``, ``weights``, ``checksum``), the
    activations store it was read from and that store's ``config_hash``, and its images."""

    run: str
    model: Mapping
    activations: str
    activations_hash: str
    images: int


@dataclasses.dataclass(frozen=True)
class CKATable:
    """The CKA of every layer of run ``run_a`` (rows) against every layer of ``run_b``
    (columns): ``values`` float32 ``[L_A, L_B]``; ``layers_a``/``layers_b`` ``{name: channels}``
    in execution order; ``batches`` minibatches of ``batch_size`` images."""

    run_a: str
    run_b: str
    layers_a: dict[str, int]
    layers_b: dict[str, int]
    values: np.ndarray
    same_architecture: bool
    batch_size: int
    batches: int

    def value(self, layer_a: str, layer_b: str) -> float:
        return float(self.values[list(self.layers_a).index(layer_a), list(self.layers_b).index(layer_b)])


@dataclasses.dataclass(frozen=True)
class LayerMatches:
    """The unit matches between ``layer_a`` of one run and ``layer_b`` of the other (the
    datasets of ``matches/<layer A>/<layer B>/``, docs/STORE.md)."""

    layer_a: str
    layer_b: str
    cka: float
    threshold: float  # a best correlation below it is no better than chance (chance_quantile)
    chance_quantile: float
    images: int
    best_a: np.ndarray
    best_a_corr: np.ndarray
    best_b: np.ndarray
    best_b_corr: np.ndarray
    pairs: np.ndarray
    pair_corr: np.ndarray
    buddies_a: np.ndarray
    buddies_b: np.ndarray
    matched_a: np.ndarray
    matched_b: np.ndarray
    self_corr: np.ndarray | None = None

    ARRAYS = (
        "best_a",
        "best_a_corr",
        "best_b",
        "best_b_corr",
        "pairs",
        "pair_corr",
        "buddies_a",
        "buddies_b",
        "matched_a",
        "matched_b",
        "self_corr",
    )
    ATTRS = ("cka", "threshold", "chance_quantile", "images")

    def summary(self) -> dict:
        """The layer pair in numbers, JSON-able: CKA, threshold, channels, matched shares."""
        return {
            "layer_a": self.layer_a,
            "layer_b": self.layer_b,
            "cka": json_number(self.cka),
            "threshold": json_number(self.threshold),
            "channels_a": len(self.matched_a),
            "channels_b": len(self.matched_b),
            "matched_a": int(self.matched_a.sum()),
            "matched_b": int(self.matched_b.sum()),
            "buddies": int((self.buddies_a >= 0).sum()),
            "mean_pair_corr": json_number(self.pair_corr.mean()) if len(self.pair_corr) else None,
            "mean_self_corr": None if self.self_corr is None else json_number(np.nanmean(self.self_corr)),
        }


@dataclasses.dataclass(frozen=True)
class PairComparison:
    """Everything computed for one pair of runs: the CKA table and the matched layer pairs."""

    cka: CKATable
    matches: Sequence[LayerMatches]


def _check_name(name: str, what: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"compare: {what} {name!r} cannot name an HDF5 group (empty, '/', '.' or '..')")
    return name


def write_comparison(
    path: str | os.PathLike,
    members: Sequence[MemberRun],
    image_ids: Sequence[str],
    pairs: Sequence[PairComparison],
    settings: ProvenanceRecord,
) -> Path:
    """Write the comparison store at ``path`` (atomic; ``settings``: its provenance record)."""
    with atomic_h5(path, KIND, VERSION, settings=settings) as fh:
        write_table(
            fh,
            "runs",
            {
                "run": [_check_name(m.run, "run") for m in members],
                "model": [str(m.model.get("name", "")) for m in members],
                "weights": [str(m.model.get("weights", "")) for m in members],
                "checksum": [str(m.model.get("checksum", "")) for m in members],
                "activations": [str(m.activations) for m in members],
                "activations_hash": [str(m.activations_hash) for m in members],
                "images": np.asarray([m.images for m in members], np.int64),
            },
        )
        write_table(fh, "images", {"image_id": [str(i) for i in image_ids]})
        root = fh.create_group("pairs", track_order=True)
        for pair in pairs:
            _write_pair(root, pair)
    return Path(path)


def _write_pair(root, pair: PairComparison) -> None:
    cka = pair.cka
    by_a = root[cka.run_a] if cka.run_a in root else root.create_group(cka.run_a, track_order=True)
    group = by_a.create_group(cka.run_b, track_order=True)
    for side, layers in (("layers_a", cka.layers_a), ("layers_b", cka.layers_b)):
        write_table(
            group, side, {"name": list(layers), "channels": np.asarray(list(layers.values()), np.int64)}
        )
    group.create_dataset("cka", data=np.asarray(cka.values, np.float32))
    group.attrs.update(
        same_architecture=bool(cka.same_architecture),
        batch_size=int(cka.batch_size),
        batches=int(cka.batches),
        estimator=ESTIMATOR,
    )
    matches = group.create_group("matches", track_order=True)
    for found in pair.matches:
        name_a = _check_name(found.layer_a, "layer")
        # Each layer of A's partners in B's execution order (HDF5 lists names alphabetically).
        by_a = matches[name_a] if name_a in matches else matches.create_group(name_a, track_order=True)
        layer = by_a.create_group(_check_name(found.layer_b, "layer"))
        for name in LayerMatches.ARRAYS:
            value = getattr(found, name)
            if value is not None:
                layer.create_dataset(name, data=np.asarray(value))
        for name in LayerMatches.ATTRS:
            layer.attrs[name] = getattr(found, name)


class CompareStore(StoreReader):
    """Reader of a comparison store.

    >>> with CompareStore("results/lite0-vs-lite1/compare.h5") as store:
    ...     store.pairs()                              # [("lite0", "lite1")]
    ...     store.cka()                                # CKATable of the (only) pair
    ...     store.layer_pairs()                        # the matched layer pairs, in numbers
    ...     store.matches("blocks.5.0", "blocks.5.0")  # LayerMatches
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.fh = open_h5_handle(self.path, KIND, VERSIONS)
        try:
            table = read_table(self.fh["runs"])
            self.settings = settings_of(self.fh)
        except BaseException:
            self.fh.close()
            raise
        self.runs = [
            MemberRun(
                run=table["run"][i],
                model={key: table[key][i] for key in ("model", "weights", "checksum")},
                activations=table["activations"][i],
                activations_hash=table["activations_hash"][i],
                images=int(table["images"][i]),
            )
            for i in range(len(table["run"]))
        ]

    @property
    def image_ids(self) -> list[str]:
        return read_strings(self.fh["images"]["image_id"])

    def pairs(self) -> list[tuple[str, str]]:
        """Every compared pair of runs ``(A, B)``, A listed before B."""
        return [(a, b) for a in self.fh["pairs"] for b in self.fh["pairs"][a]]

    def _pair(self, run_a: str | None, run_b: str | None):
        """The group of pair (run_a, run_b); with neither given, the store's only pair."""
        pairs = self.pairs()
        if run_a is None and run_b is None:
            if len(pairs) != 1:
                raise KeyError(f"{self.path}: holds {len(pairs)} pairs of runs; name one of {pairs}")
            run_a, run_b = pairs[0]
        if (run_a, run_b) not in pairs:
            raise KeyError(f"{self.path}: no pair ({run_a}, {run_b}); pairs: {pairs}")
        return self.fh["pairs"][run_a][run_b]

    def cka(self, run_a: str | None = None, run_b: str | None = None) -> CKATable:
        group = self._pair(run_a, run_b)
        layers = {}
        for side in ("layers_a", "layers_b"):
            table = read_table(group[side])
            layers[side] = dict(zip(table["name"], (int(c) for c in table["channels"])))
        run_b_name = group.name.rsplit("/", 1)[1]
        return CKATable(
            run_a=group.parent.name.rsplit("/", 1)[1],
            run_b=run_b_name,
            layers_a=layers["layers_a"],
            layers_b=layers["layers_b"],
            values=group["cka"][()],
            same_architecture=bool(group.attrs["same_architecture"]),
            batch_size=int(group.attrs["batch_size"]),
            batches=int(group.attrs["batches"]),
        )

    def layer_pairs(self, run_a: str | None = None, run_b: str | None = None) -> list[tuple[str, str]]:
        """The matched layer pairs ``(layer A, layer B)``, in A's execution order."""
        matches = self._pair(run_a, run_b)["matches"]
        return [(a, b) for a in matches for b in matches[a]]

    def matches(
        self, layer_a: str, layer_b: str, run_a: str | None = None, run_b: str | None = None
    ) -> LayerMatches:
        """The unit matches of one layer pair (a clear error listing the pairs that exist)."""
        matches = self._pair(run_a, run_b)["matches"]
        if layer_a not in matches or layer_b not in matches[layer_a]:
            found = ", ".join(f"{a} ~ {b}" for a, b in self.layer_pairs(run_a, run_b))
            raise KeyError(f"{self.path}: no matches of {layer_a} ~ {layer_b}; matched layer pairs: {found}")
        group = matches[layer_a][layer_b]
        arrays = {name: group[name][()] for name in LayerMatches.ARRAYS if name in group}
        attrs = {name: group.attrs[name].item() for name in LayerMatches.ATTRS}
        return LayerMatches(layer_a=layer_a, layer_b=layer_b, **attrs, **arrays)


def open_comparison(path: str | os.PathLike) -> CompareStore:
    """A :class:`CompareStore` from a compare run's folder (``results/<run>/``) or its file."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE_NAME
    if not path.exists():
        raise StoreError(
            f"{path}: no comparison store (run the compare workflow: see README, 'Compare models')"
        )
    return CompareStore(path)
