"""Offline questions about a finished run: ``pipeline.open_results(path)`` and ``model-atlas query``.

>>> results = open_results("results/demo")
>>> results.layers                              # {"stem": 32, ...}
>>> results.top_examples("blocks.3.0", 42, k=5)  # images that drive the channel most
>>> results.top_classes("blocks.3.0", 42)        # classes it supports on average
>>> results.label("blocks.3.0", 42)              # its label from the class hierarchy
>>> results.activations("head")["max"]          # lazy dask [N, C]
>>> results.image("coffee")                     # predictions and strongest channels
>>> results.circuits("blocks.3.0", 42)           # channels it is driven by and feeds
>>> results.atlas("blocks.4.2")                 # the layer's activation atlas: levels and cells
>>> results.search("dog")                       # what the site's search box lists, best first
>>> results.scores("blocks.3.0")                # every channel's trust scores, with definitions

Everything is read from the run's stores (``activations.h5`` and the shard files it
stitches, ``featurevis.h5``, ``blocks.h5``, ``circuits.h5``, ``atlas.h5``); no model, no dataset, no
torch. Arrays are lazy: nothing reads a whole store into memory. Unknown layers, channels
and images raise ``KeyError``/``ValueError`` whose message lists what exists.

Other stages add per-image products with :func:`register_image_section`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.labels import ClassHierarchy, Label, LabelSettings
from pipeline.labels.layers import layer_labels, reader_hierarchy, stored_settings
from pipeline.ranking import top_order
from pipeline.search import search as search_results
from pipeline.store import RunFiles, json_number, read_layers_json
from pipeline.store.activations_reader import ActivationsStore

CIRCUIT_CHANNELS = 6  # channels listed each way by Results.channel when k is not given
# name -> fn(results, image_id, row) -> JSON-able value; shown by Results.image()
IMAGE_SECTIONS: dict[str, Callable] = {}


def register_image_section(name: str, fn: Callable) -> None:
    """Add ``name: fn(results, image_id, row)`` to what :meth:`Results.image` returns."""
    IMAGE_SECTIONS[name] = fn


def open_results(path) -> Results:
    """A run folder (``results/<run>``) or its ``activations.h5``."""
    path = Path(path)
    if path.is_dir():
        return Results(path, RunFiles(path).activations)
    if path.is_file():
        return Results(path.parent, path)
    raise FileNotFoundError(f"{path}: neither a run folder nor a store file")


def _listing(names, limit: int = 20) -> str:
    names = list(names)
    more = f" ... and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(map(str, names[:limit])) + more


class Results:
    """The stores of one run, opened read-only."""

    def __init__(self, run_dir: Path, store_path: Path):
        self.run_dir = Path(run_dir)
        self.files = RunFiles(self.run_dir)
        if not Path(store_path).is_file():
            raise FileNotFoundError(
                f"{store_path}: no activations store; run the workflow's extraction stage first"
            )
        self.store = ActivationsStore(store_path)
        self.aliases = dict(self.store.aliases)
        if self.files.layers_json.is_file():
            self.aliases.update(read_layers_json(self.files.layers_json).aliases)

    def close(self) -> None:
        self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- what exists -------------------------------------------------------------------
    @property
    def layers(self) -> dict[str, int]:
        """Layer name -> channel count, in execution order."""
        return {name: meta["channels"] for name, meta in self.store.layers.items()}

    @property
    def image_ids(self) -> list[str]:
        return list(self.store.images["image_id"])

    def layer_name(self, layer: str) -> str:
        """The canonical name of ``layer`` (an alias such as ``mixed4d`` resolves)."""
        name = self.aliases.get(layer, layer)
        if name not in self.store.layers:
            aliases = [a for a, n in self.aliases.items() if n in self.store.layers]
            hint = f"; aliases: {_listing(aliases)}" if aliases else ""
            raise KeyError(
                f"unknown layer {layer!r}; layers in this run: {', '.join(self.store.layers)}{hint}"
            )
        return name

    def _channel(self, layer: str, channel: int) -> tuple[str, int]:
        name = self.layer_name(layer)
        channels = self.store.layers[name]["channels"]
        if not 0 <= int(channel) < channels:
            raise ValueError(f"layer {name} has channels 0-{channels - 1}; got {channel}")
        return name, int(channel)

    def _row(self, image_id: str) -> int:
        image_id = str(image_id)
        row = self.store.row_of(image_id)
        if row is not None:
            return row
        skipped = dict(zip(self.store.skipped["image_id"], self.store.skipped["reason"]))
        if image_id in skipped:
            raise ValueError(f"image {image_id!r} was skipped during extraction: {skipped[image_id]}")
        ids = self.store.images["image_id"]
        raise KeyError(f"unknown image {image_id!r}; {len(ids)} images: {_listing(ids)}")

    def summary(self) -> dict:
        store = self.store
        skipped = [
            {"image_id": i, "path": p, "reason": r}
            for i, p, r in zip(store.skipped["image_id"], store.skipped["path"], store.skipped["reason"])
        ]
        return {
            "run": str(self.run_dir),
            "model": store.model,
            "layers": self.layers,
            "channels": sum(self.layers.values()),
            "images": store.num_images,
            "skipped": len(skipped),
            "skipped_images": skipped,
            "labelled_images": int(sum(c >= 0 for c in store.images["label_class"])),
            "attribution": store.settings.get("attribution"),
            "top_k": store.settings.get("top_k"),
            "stores": {
                "activations": str(store.path),
                "featurevis": str(self._featurevis_path()) if self._featurevis_path().is_file() else None,
                "circuits": str(self._circuits_path()) if self._circuits_path().is_file() else None,
                "atlas": str(self._atlas_path()) if self._atlas_path().is_file() else None,
                "scores": str(self.files.scores) if self.files.scores.is_file() else None,
            },
        }

    # -- lazy per-image arrays ---------------------------------------------------------
    def activations(self, layer: str) -> dict:
        """Lazy dask ``[N, C]`` arrays: ``max``, ``mean``, ``argmax_y``, ``argmax_x`` and (stores
        extracted with minima) ``min``, ``argmin_y``, ``argmin_x``."""
        name = self.layer_name(layer)
        wanted = ("max", "mean", "argmax_y", "argmax_x", "min", "argmin_y", "argmin_x")
        return {q: self.store.per_image(name, q) for q in wanted if q in self.store.quantities}

    def attributions(self, layer: str) -> dict:
        """Lazy dask ``[N, C]`` channel attributions: ``predicted`` (and ``label`` when labelled)."""
        name = self.layer_name(layer)
        found = {}
        for key, q in (("predicted", "attr_predicted"), ("label", "attr_label")):
            if q in self.store.quantities:
                found[key] = self.store.per_image(name, q)
        if not found:
            raise ValueError("this run has no attributions (extract.attribution was none)")
        return found

    # -- channels -------------------------------------------------------------------------
    def top_examples(self, layer: str, channel: int, k: int | None = None) -> list[dict]:
        """The images that drive ``channel`` most, strongest first (value desc, then row asc);
        at most ``k``, by default all stored."""
        name, channel = self._channel(layer, channel)
        return [_example_json(e) for e in self.store.top_examples(name, channel, k)]

    def negative_examples(self, layer: str, channel: int, k: int | None = None) -> list[dict]:
        """The images on which ``channel`` is most negative (its spatial minimum, lowest
        first), only those where it is below 0; [] for channels that are never negative
        (a ReLU's output) and stores without minima."""
        name, channel = self._channel(layer, channel)
        return [_example_json(e) for e in self.store.bottom_examples(name, channel, k) if e.value < 0]

    def thumbnail(self, layer: str, channel: int, rank: int) -> np.ndarray:
        """uint8 ``[T, T, 3]``: the receptive-field crop of the ``rank``-th top example."""
        name, channel = self._channel(layer, channel)
        return self.store.thumbnail(name, self.store.top(name).thumbnail[channel, rank])

    def top_classes(self, layer: str, channel: int, k: int | None = None) -> list[dict]:
        """Classes whose predictions the channel supports most (mean attribution over the
        images predicted as each), at most ``k``, by default all stored (``top_k``); []
        without attribution."""
        name, channel = self._channel(layer, channel)
        classes = self.store.classes(name)
        if classes is None:
            return []
        names = self.store.class_names
        return [
            {
                "class_id": c.class_id,
                "class_name": names[c.class_id],
                "score": json_number(c.score),
                "images": c.images,
            }
            for c in classes.top_classes(channel, k)
        ]

    def label(self, layer: str, channel: int) -> Label | None:
        """The channel's label (pipeline/labels/rule.py), from its attribution by predicted
        class and the run's hierarchy (:attr:`hierarchy`; the class names alone when it has
        none: then the top class, when it dominates). None
        without attribution. The whole layer is labelled once (the site's labels are the same
        call, :func:`pipeline.labels.layers.layer_labels`: the labels the reduction stored, or
        computed from the store's attribution for a store written before they were stored)."""
        name, channel = self._channel(layer, channel)
        labels = self.layer_labels(name)
        return None if labels is None else labels[channel]

    def layer_labels(self, layer: str) -> list[Label] | None:
        """Every channel's label of ``layer`` (channel order), read or computed once; None
        without attribution."""
        name = self.layer_name(layer)
        if name not in self._layer_labels:
            self._layer_labels[name] = layer_labels(self.store, name)
        return self._layer_labels[name]

    @functools.cached_property
    def _layer_labels(self) -> dict[str, list[Label] | None]:
        return {}

    @functools.cached_property
    def hierarchy(self) -> ClassHierarchy | None:
        """The class hierarchy the run's labels were made from (``labels.hierarchy``: the
        shipped WordNet one for ImageNet-1k's classes, or the user's file); None when the
        classes are their own synsets."""
        return reader_hierarchy(self.store.class_names, self.label_settings)

    @functools.cached_property
    def label_settings(self) -> LabelSettings:
        """The ``labels:`` settings the run's labels were made with (the defaults for a store
        written before labels were stored, whose labels are computed with them)."""
        return stored_settings(self.store) or LabelSettings()

    def channel_stats(self, layer: str, channel: int) -> dict:
        """Statistics over images of the channel's spatial maximum, with its histogram."""
        name, channel = self._channel(layer, channel)
        stats = self.store.stats(name)
        return {
            "mean": json_number(stats.mean[channel]),
            "std": json_number(stats.std[channel]),
            "active_fraction": json_number(stats.active_fraction[channel]),
            "mean_of_spatial_mean": json_number(stats.mean_of_mean[channel]),
            "histogram": {
                "counts": stats.hist_counts[channel].tolist(),
                "edges": [json_number(e) for e in stats.hist_edges[channel]],
            },
        }

    def channel(self, layer: str, channel: int, k: int | None = None) -> dict:
        """Everything about one channel (what ``model-atlas query ... channel`` prints)."""
        name, channel = self._channel(layer, channel)
        return {
            "layer": name,
            "channel": channel,
            "top_examples": self.top_examples(name, channel, k),
            "negative_examples": self.negative_examples(name, channel, k),
            "top_classes": self.top_classes(name, channel, k),
            "label": _label_json(self.label(name, channel)),
            "stats": self.channel_stats(name, channel),
            "featurevis": self.featurevis_info(name, channel),
            "circuits": self.circuits(name, channel, CIRCUIT_CHANNELS if k is None else k)
            if self._circuits_path().is_file()
            else None,
        }

    def featurevis_info(self, layer: str, channel: int) -> dict | None:
        """How the channel's feature visualization was made and how it scores (preset,
        steps, image size, tensor, activation, rank, image rank); None when not rendered."""
        name, channel = self._channel(layer, channel)
        if not self._featurevis_path().is_file():
            return None
        from pipeline.store.featurevis import FeatureVisStore

        with FeatureVisStore(self._featurevis_path()) as store:
            return store.describe(name, channel)

    def featurevis(self, layer: str, channel: int) -> np.ndarray:
        """uint8 image of the channel's feature visualization (from ``featurevis.h5``)."""
        name, channel = self._channel(layer, channel)
        path = self._featurevis_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"no feature visualization store at {path}; run the workflow "
                "with featurevis enabled for this layer"
            )
        from pipeline.store.featurevis import FeatureVisStore

        with FeatureVisStore(path) as store:
            return store.image(name, channel)

    def _featurevis_path(self) -> Path:
        return self.files.featurevis

    # -- circuits (circuits.h5, pipeline/store/circuits.py) -----------------------------
    def circuits_store(self):
        """The run's circuits store, opened (the caller closes it)."""
        from pipeline.store.circuits import CircuitsStore

        path = self._circuits_path()
        if not path.is_file():
            raise FileNotFoundError(f"no circuits store at {path}; run the workflow with circuits enabled")
        return CircuitsStore(path)

    def circuits(self, layer: str, channel: int, k: int = CIRCUIT_CHANNELS) -> dict:
        """The channels of the previous extracted layer that drive ``channel`` most (``upstream``,
        positive attribution; ``upstream_negative``, negative) and those of the next layer it
        feeds most (``downstream``, ``downstream_negative``), at most ``k`` each, with the
        previous and next layer's names (see :meth:`pipeline.store.circuits.CircuitsStore.connections`)."""
        name, channel = self._channel(layer, channel)
        with self.circuits_store() as store:
            return store.connections(name, channel, k)

    def _circuits_path(self) -> Path:
        return self.files.circuits

    # -- per-unit scores (scores.h5, pipeline/store/scores.py) ----------------------------
    def scores(self, layer: str, sort: str | None = None) -> dict:
        """``layer``'s score table: ``rows`` (one dict per channel: ``channel`` and every
        score, NaN as None), ``columns`` (per score its ``key``, ``name``, one-line
        ``definition``, plain-language ``sentence`` template and which way is ``higher``;
        :mod:`pipeline.scores.definitions`), and the layer's ``clarity_random``,
        ``selectivity_classes``, ``embedding_layer``, ``image_size`` and ``path_layers``.
        ``sort``: a score key; rows by it descending (missing values last), else by channel."""
        from pipeline.scores.definitions import SCORES, score
        from pipeline.store.scores import ScoresStore

        name = self.layer_name(layer)
        path = self.files.scores
        if not path.is_file():
            raise FileNotFoundError(f"no scores store at {path}; run the workflow's scores rule")
        if sort is not None:
            score(sort)  # a clear error naming the keys
        with ScoresStore(path) as store:
            table, info = store.table(name), store.info(name)
        keys = ["channel", *(s.key for s in SCORES), "selectivity_class", "visualization_max", "dataset_max"]
        rows = [
            {key: _score_value(table[key][i]) for key in keys if key in table}
            for i in range(info["channels"])
        ]
        if sort is not None:
            rows.sort(key=lambda row: (row[sort] is None, -(row[sort] or 0), row["channel"]))
        return {"layer": name, **info, "columns": [s.to_dict() for s in SCORES], "rows": rows}

    # -- activation atlases (atlas.h5, pipeline/store/atlas.py) ---------------------------
    def atlas_store(self):
        """The run's activation-atlas store, opened lazily (the caller closes it)."""
        from pipeline.store.atlas import AtlasStore

        path = self._atlas_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"no activation atlas store at {path}; run the workflow with atlas enabled"
            )
        return AtlasStore(path)

    def atlas(self, layer: str) -> dict:
        """The activation atlas of ``layer`` (a name or alias): its shape, UMAP settings and
        samples, and per zoom level (coarsest first) its cells with position ``i``, ``j``,
        ``count``, top classes (by the attribution of the cell's mean vector) and dataset
        examples (see :meth:`pipeline.store.atlas.AtlasStore.describe`)."""
        with self.atlas_store() as store:
            name = self.aliases.get(layer, layer)
            if name not in store.layers():
                raise KeyError(
                    f"no activation atlas of layer {layer!r}; atlas layers in this run: "
                    f"{', '.join(store.layers()) or 'none'}"
                )
            return store.describe(name)

    def _atlas_path(self) -> Path:
        return self.files.atlas

    # -- images ---------------------------------------------------------------------------
    def image(self, image_id: str, channels: int = 5) -> dict:
        """One image: label, top-5 predictions, strongest and most-attributed channels per layer."""
        row = self._row(image_id)
        image, names = self.store.image_row(row), self.store.class_names
        predictions = self.store.predictions(row)
        label_class = int(image["label_class"])
        out = {
            "image_id": str(image_id),
            "path": image["path"],
            "label": image["label"] or None,
            "label_class": label_class if label_class >= 0 else None,
            "predictions": [
                {"class_id": int(c), "class_name": names[c], "logit": json_number(v)}
                for c, v in zip(predictions.ids, predictions.logits)
            ],
            "layers": {},
        }
        for name in self.store.layers:
            values = self.store.image_activations(name, row)
            strongest = top_order(values.max, channels)
            entry = {
                "strongest": [
                    {
                        "channel": int(c),
                        "activation": json_number(values.max[c]),
                        "y": int(values.argmax_y[c]),
                        "x": int(values.argmax_x[c]),
                    }
                    for c in strongest
                ]
            }
            if values.attr_predicted is not None:
                attr = values.attr_predicted
                best = top_order(attr, channels)
                entry["most_attributed"] = [
                    {"channel": int(c), "attribution": json_number(attr[c])} for c in best
                ]
            out["layers"][name] = entry
        for section, fn in IMAGE_SECTIONS.items():
            out[section] = fn(self, str(image_id), row)
        return out

    # -- search (pipeline/search.py: the site's search box ranks the same way) -----------
    @functools.cached_property
    def search_entries(self) -> list:
        """The run's search index (:func:`pipeline.search.run_entries`, without pages), made
        once: every layer and channel, every class (seen: predicted for some image, as the
        site's class pages), the ImageNet-1k hierarchy's synsets when the classes are its, the
        featured images."""
        from pipeline import search

        names = list(self.store.class_names)
        seen: set[int] = set()
        for name in self.store.layers:
            classes = self.store.classes(name)
            if classes is not None:
                seen.update(np.flatnonzero(np.asarray(classes.count) > 0).tolist())
        images = []
        if self.files.blocks.is_file():
            with self.blocks_store() as store:
                images = sorted(store.image_ids)
        run = search.Run(
            layers=list(self.layers.items()),
            aliases={a: n for a, n in self.aliases.items() if n in self.store.layers},
            class_names=names,
            seen_classes=frozenset(seen),
            images=images,
            hierarchy=self.hierarchy,
            labels={name: self.layer_labels(name) for name in self.layers if name in self.store.layers},
        )
        return search.run_entries(run)

    def search(self, query: str, k: int = 20) -> list[dict]:
        """The ``k`` best matches of ``query`` among layers, channels (``layer:5``), classes
        and their synonyms, kinds of thing ("dog": every class under the synset dog) and
        featured images, best first, ranked as the site's search box ranks them:
        ``{"kind", "name", "match", "via", "label", "confidence", "detail"}``."""
        entries = self.search_entries
        out = []
        for found in search_results(entries, query, k):
            e = entries[found["entry"]]
            via = entries[found["via"]].name if found["via"] is not None else None
            out.append(
                {
                    "kind": e.kind,
                    "name": e.name,
                    "match": found["match"],
                    "via": via,
                    "label": e.label or None,
                    "confidence": e.confidence,
                    "detail": e.detail or None,
                }
            )
        return out

    # -- Building Blocks (blocks.h5, pipeline/store/blocks.py) ---------------------------
    def blocks_store(self):
        """The run's Building Blocks store, opened lazily (the caller closes it)."""
        from pipeline.store.blocks import BlocksStore

        path = self.files.blocks
        if not path.is_file():
            raise FileNotFoundError(
                f"no Building Blocks store at {path}; run the workflow with blocks enabled"
            )
        return BlocksStore(path)

    def blocks(self, image_id: str, layer: str, *, icons: bool = True) -> dict:
        """One featured image's Building Blocks at ``layer`` as a nested dict of NumPy arrays
        (``dictionary``, ``grid``, ``attribution``, ``groups``, ``from_previous``)."""
        with self.blocks_store() as store:
            return store.blocks(str(image_id), self.aliases.get(layer, layer), icons=icons)


def _blocks_section(results: Results, image_id: str, row: int):
    """The ``blocks`` entry of :meth:`Results.image`: None unless the image is featured."""
    if not results.files.blocks.is_file():
        return None
    from pipeline.store.blocks import json_summary

    with results.blocks_store() as store:
        return json_summary(store, image_id) if image_id in store else None


register_image_section("blocks", _blocks_section)

# ---------------------------------------------------------------------------------
# Command line (parsed in pipeline/cli.py)
# ---------------------------------------------------------------------------------


def run_cli(args) -> int:
    with open_results(args.results) as results:
        if args.what == "summary":
            value, text = results.summary(), _summary_text
        elif args.what == "channel":
            value, text = results.channel(args.layer, args.channel, args.k), _channel_text
        elif args.what == "image":
            value, text = results.image(args.image_id), _image_text
        elif args.what == "atlas":
            value, text = results.atlas(args.layer), _atlas_text
        elif args.what == "search":
            value, text = results.search(args.query, args.k), _search_text
        elif args.what == "scores":
            value, text = results.scores(args.layer, args.sort), _scores_text
        else:
            raise ValueError(f"unknown query {args.what!r}")
    if args.json:
        print(json.dumps(value, indent=2, default=str))
    else:
        print(text(value))
    return 0


def _search_text(found: list[dict]) -> str:
    """One line per match, best first: kind, name, why it matched."""
    if not found:
        return "nothing matches"
    lines = []
    for f in found:
        why = f"a kind of {f['via']}" if f["via"] else f["match"]
        extra = "".join(f", {x}" for x in (f["label"], f["detail"]) if x)
        lines.append(f"  {f['kind']:<8} {f['name']:<32} {why}{extra}")
    return "\n".join(lines)


def _summary_text(s: dict) -> str:
    model = s["model"]
    lines = [
        f"run {s['run']}: model {model.get('name')} ({model.get('weights')}), "
        f"{len(s['layers'])} layers, {s['channels']} channels",
        f"images: {s['images']} extracted, {s['skipped']} skipped, "
        f"{s['labelled_images']} labelled; attribution: {s['attribution']}",
    ]
    lines += [f"  {name:<16} {c} channels" for name, c in s["layers"].items()]
    if s["skipped_images"]:
        lines.append("skipped:")
        lines += [f"  {i['image_id']}: {i['reason']} ({i['path']})" for i in s["skipped_images"]]
    return "\n".join(lines)


def _score_value(value):
    """A stored score as JSON: bools and ints as they are, floats by :func:`json_number`."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    return json_number(value)


SCORE_COLUMNS = (
    ("channel", "ch"),
    ("strength", "strength"),
    ("image_rank", "rank"),
    ("specificity_margin", "margin"),
    ("selectivity", "select"),
    ("clarity", "clarity"),
    ("clarity_gain", "gain"),
    ("polysemanticity", "poly"),
    ("groups", "groups"),
    ("diversity_disagreement", "diverse"),
    ("path_similarity", "path"),
    ("path_flag", "flag"),
    ("label_precision", "label"),
    ("fires_images", "images"),
    ("fires_positions", "positions"),
)


def _scores_text(s: dict) -> str:
    """The score table, one channel a line; the definitions once below it."""
    lines = [
        f"scores of {s['layer']}: {s['channels']} channels; clarity of random crops "
        f"{s['clarity_random']:.3g}; selectivity by {s['selectivity_classes']} class"
    ]
    lines.append(" ".join(f"{short:>9}" for _, short in SCORE_COLUMNS))

    def cell(value) -> str:
        if value is None:
            return "-"
        if isinstance(value, bool):
            return "yes" if value else "no"
        return str(value) if isinstance(value, int) else f"{value:.3g}"

    lines += [" ".join(f"{cell(row.get(key)):>9}" for key, _ in SCORE_COLUMNS) for row in s["rows"]]
    lines.append("")
    lines += [f"  {c['key']}: {c['definition']}" for c in s["columns"]]
    return "\n".join(lines)


def _example_json(e) -> dict:
    return {
        "rank": e.rank,
        "image_id": e.image_id,
        "path": e.path,
        "label": e.label,
        "activation": json_number(e.value),
        "y": e.y,
        "x": e.x,
        "box": list(e.box),
        "row": e.row,
    }


def _label_json(label: Label | None) -> dict | None:
    if label is None:
        return None
    return {**label.to_dict(), "confidence": json_number(label.confidence)}


def _label_text(label: dict) -> str:
    if label["synset"] is None:
        return f"label: {label['text']} (best confidence {label['confidence']})"
    tentative = "; tentative: too few images" if label["tentative"] else ""
    return (
        f"label: {label['text']} (confidence {label['confidence']}; from {label['images']} images "
        f"of {label['class_count']} classes{tentative})"
    )


def _example_line(e: dict) -> str:
    return (
        f"  {e['rank'] + 1:>3}. {e['image_id']:<24} {e['activation']:>10} at (y={e['y']}, x={e['x']}) "
        f"box {e['box']}"
    )


def _channel_text(c: dict) -> str:
    stats = c["stats"]
    lines = [
        f"{c['layer']} channel {c['channel']}: mean max {stats['mean']}, std {stats['std']}, "
        f"active in {stats['active_fraction']} of images",
    ]
    if c.get("label"):
        lines.append(_label_text(c["label"]))
    lines.append("top examples:")
    lines += [_example_line(e) for e in c["top_examples"]]
    if c.get("negative_examples"):
        lines.append("most negative examples (the channel's spatial minimum):")
        lines += [_example_line(e) for e in c["negative_examples"]]
    fv = c["featurevis"]
    if fv:
        lines.append(
            f"feature visualization: {fv['preset'] or 'run'} preset, {fv['steps']} steps at "
            f"{fv['image_size']} px, {fv['tensor']}; activation {fv['activation']}, rank {fv['rank']} "
            f"among channels, {fv['image_rank']} among the layer's images"
        )
    if c["top_classes"]:
        lines.append("top classes (mean attribution over images predicted as the class):")
        lines += [
            f"  {t['class_name']:<30} {t['score']:>10}  ({t['images']} images)" for t in c["top_classes"]
        ]
    if c.get("circuits"):
        lines.extend(_circuits_text(c["circuits"]))
    return "\n".join(lines)


def _circuits_text(circuits: dict) -> list[str]:
    """Upstream and downstream channels in a few lines (``--json`` has the numbers as well)."""

    def listed(entries: list[dict]) -> str:
        return ", ".join(f"{e['channel']} ({e['attribution']:+.3g})" for e in entries) or "none"

    if circuits["previous_layer"]:
        how = f"mean over {circuits['examples']} of its top examples"
    else:
        how = "over the next layer's top examples"
    lines = [f"circuits ({circuits['method']}: gradient x activation, {how}):"]
    if circuits["previous_layer"]:
        lines.append(f"  upstream from {circuits['previous_layer']}: {listed(circuits['upstream'])}")
        lines.append(f"    inhibited by: {listed(circuits['upstream_negative'])}")
    else:
        lines.append("  upstream: none (the first extracted layer)")
    if circuits["next_layer"]:
        lines.append(f"  downstream into {circuits['next_layer']}: {listed(circuits['downstream'])}")
        lines.append(f"    inhibits: {listed(circuits['downstream_negative'])}")
    else:
        lines.append("  downstream: none (the last extracted layer)")
    return lines


ATLAS_CELLS = 10  # largest cells listed per level by `query ... atlas`


def _atlas_text(a: dict) -> str:
    """Per level how many cells, and its largest cells with their top classes."""
    umap = a["umap"]
    lines = [
        f"activation atlas of {a['layer']}: {a['samples']} vectors of {a['channels']} channels "
        f"({a['positions_per_image']} positions per image), UMAP {umap.get('metric')} "
        f"n_neighbors={umap.get('n_neighbors')} min_dist={umap.get('min_dist')} seed={umap.get('seed')} "
        f"init={umap.get('init', 'spectral')}"
    ]
    for level in a["levels"]:
        cells = level["cells"]
        lines.append(
            f"level {level['side']}x{level['side']}: {len(cells)} cells of >= {level['min_count']} vectors"
        )
        largest = sorted(cells, key=lambda c: (-c["count"], c["i"], c["j"]))[:ATLAS_CELLS]
        for c in largest:
            classes = ", ".join(f"{t['class_name']} ({t['attribution']})" for t in c["top_classes"]) or "none"
            lines.append(f"  ({c['i']:>3}, {c['j']:>3}) {c['count']:>6} vectors: {classes}")
    return "\n".join(lines)


def _image_text(i: dict) -> str:
    lines = [
        f"{i['image_id']} ({i['path']})" + (f", label {i['label']}" if i["label"] else ""),
        "predictions: " + ", ".join(f"{p['class_name']} ({p['logit']})" for p in i["predictions"]),
        "strongest channels:",
    ]
    for name, layer in i["layers"].items():
        lines.append(
            f"  {name:<16} " + ", ".join(f"{s['channel']} ({s['activation']})" for s in layer["strongest"])
        )
    for section in IMAGE_SECTIONS:
        if section == "blocks":
            lines.extend(_blocks_text(i[section]))
        else:
            lines.append(f"{section}: {json.dumps(i[section], default=str)[:200]}")
    return "\n".join(lines)


def _blocks_text(blocks: dict | None) -> list[str]:
    """The Building Blocks of an image in a few lines (``--json`` has every array)."""
    if not blocks:
        return ["Building Blocks: none (not a featured image)"]
    classes = blocks["classes"]
    lines = [
        "Building Blocks, attributed classes: "
        + ", ".join(f"{k['class_name']} (logit {k['logit']})" for k in classes),
        f"  layer total attribution to {classes[0]['class_name']} (gradient x activation; --json for all):",
    ]
    for name, layer in blocks["layers"].items():
        cells = layer["dictionary"]["magnitude"]
        source = layer.get("from_previous", {}).get("layer")
        lines.append(
            f"  {name:<16} {len(cells)}x{len(cells[0])} cells, total {layer['attribution']['total'][0]}"
            + (f", flows from {source}" if source else "")
        )
    return lines
