"""Benchmark of unit labels: precision on held-out labelled photos against a shuffled baseline.

    python bench/labels.py [--photos /work/shared/datasets/imagenet-samples-200]
                           [--cache /tmp/model-atlas-labels-bench] [--top 5] [--seed 0]

Needs a folder of labelled ImageNet photos named ``<wnid>_<name>.JPEG`` (the wnid is the
true class; for development the 200 photos of the shared datasets folder) and exits with a
message saying so when it is absent. Runs the real workflow's extraction (EfficientNet-Lite0,
every layer, gradient attribution as the default config) on the photos once; the run folder
is cached under ``--cache`` and reused by later runs.

Protocol (two folds): the photos are split into halves A and B by a seeded permutation. The
labels of every channel are computed from half A alone, as the reduction would from A (each
channel's mean attribution per predicted class; for the AUROC factor its per-image ``max``
and each image's predicted class), and measured on half B: a labelled channel's *precision*
is the share of its top ``--top`` held-out images (by ``max``) whose TRUE class falls under
the label's synset. The baseline is the same figure for the labels shuffled among the
labelled channels of the layer (same seed). Then A and B swap, and both folds are pooled.

The logit check needs no photo labels: logit unit ``k`` of the classifier has gradient x
activation attribution ``logit_k`` towards class ``k`` and 0 towards every other class
(d logit_c / d logit_k = [c = k]), so its attribution vector is read off the run's
predictions; the rule must name class ``k`` or an ancestor for >= 95 % of the units whose
class was predicted at least once (for the AUROC factor a logit is known only where it is in
an image's top 5; elsewhere it ranks below them).

Prints, per rule (each candidate score and their products) and layer: the share of channels
labelled, the median (and mean) precision, the shuffled baseline, and the logit check; then
each rule's pooled margin over its baseline, best first.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.labels import IMAGENET1K, ClassHierarchy  # noqa: E402
from pipeline.labels.rule import Evidence, LabelSettings, SynsetMatrix, label_units  # noqa: E402
from pipeline.ranking import top_order  # noqa: E402

PHOTOS = Path("/work/shared/datasets/imagenet-samples-200")
CACHE = Path("/tmp/model-atlas-labels-bench")
RULES = [
    "coverage*participation",  # (a)
    "auroc",  # (b)
    "coverage*ic",  # (c)
    "coverage*participation*ic",  # (a)(c)
    "coverage*participation*auroc",  # (a)(b)
    "auroc*ic",  # (b)(c)
    "coverage*participation*auroc*ic",  # (a)(b)(c)
]
WNID_NAME = re.compile(r"^(n\d{8})_")


def extract(photos: Path, cache: Path) -> Path:
    """The run's activations.h5: the real workflow, extraction only, cached in ``cache``."""
    store = cache / "results" / "labels" / "activations.h5"
    if store.is_file():
        return store
    import yaml

    cache.mkdir(parents=True, exist_ok=True)
    config = {
        "run": "labels",
        "model": {"name": "efficientnet_lite0", "weights": "pretrained"},
        "device": "cpu",
        "threads": 1,
        "dataset": {"kind": "folder", "path": str(photos)},
        "featurevis": {"enabled": False},
        "extract": {"layers": "all", "images_per_shard": 100},  # gradient attribution: the default
        "blocks": {"enabled": False},
        "circuits": {"enabled": False},
        "atlas": {"enabled": False},
        "site": {"enabled": False},
    }
    (cache / "config.yaml").write_text(yaml.safe_dump(config))
    print(f"extracting {photos} into {cache} (a few minutes; cached for later runs)", flush=True)
    subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(cache)]
        + ["--configfile", str(cache / "config.yaml"), "--cores", "2", "--quiet"],
        cwd=REPO,
        check=True,
    )
    return store


def true_classes(paths, hierarchy: ClassHierarchy) -> np.ndarray:
    """Class index of each image from its file name ``<wnid>_<name>``; -1 when unknown."""
    index = {wnid: k for k, wnid in enumerate(hierarchy.classes)}
    found = []
    for path in paths:
        match = WNID_NAME.match(Path(str(path)).name)
        found.append(index.get(match.group(1), -1) if match else -1)
    return np.array(found)


def class_evidence(attribution, activations, predicted, rows, classes: int) -> Evidence:
    """What the reduction would hold for the images ``rows``: mean attribution per predicted
    class (NaN where none), images per class, per-image activations and classes."""
    sums = np.zeros((attribution.shape[1], classes))
    counts = np.bincount(predicted[rows], minlength=classes)
    np.add.at(sums.T, predicted[rows], np.nan_to_num(attribution[rows]))
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / counts, np.nan).astype(np.float32)
    return Evidence(means, counts, activations[rows], predicted[rows])


def precision(labels, synsets: SynsetMatrix, activations, truth, rows, top: int) -> np.ndarray:
    """Per labelled channel: share of its top held-out images whose true class is under its label."""
    column = {wnid: s for s, wnid in enumerate(synsets.ids)}
    held = activations[rows]
    best = top_order(held, top, axis=0)  # [top, C]
    result = []
    for channel, label in enumerate(labels):
        if label is None or label.synset is None:
            continue
        true = truth[rows][best[:, channel]]
        under = synsets.members[np.clip(true, 0, None), column[label.synset]] * (true >= 0)
        result.append(under.mean())
    return np.array(result)


def logit_check(hierarchy, synsets, settings, top_ids, top_logits) -> tuple[int, int]:
    """(units named by their class or an ancestor, units whose class was predicted)."""
    classes = len(hierarchy.classes)
    predicted = top_ids[:, 0]
    counts = np.bincount(predicted, minlength=classes)
    attribution = np.full((classes, classes), np.nan, np.float32)
    attribution[:, counts > 0] = 0.0
    for k in np.flatnonzero(counts):
        attribution[k, k] = top_logits[predicted == k, 0].mean()
    activations = np.full((len(predicted), classes), -np.inf)
    for rank in range(top_ids.shape[1]):
        activations[np.arange(len(predicted)), top_ids[:, rank]] = top_logits[:, rank]
    evidence = Evidence(attribution, counts, activations, predicted)
    labels = label_units(hierarchy, evidence, settings, synsets=synsets)
    units = np.flatnonzero(counts)
    named = sum(
        labels[k].synset is not None and labels[k].synset in hierarchy.ancestors(hierarchy.classes[k])
        for k in units
    )
    return int(named), len(units)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--top", type=int, default=5, help="held-out top examples per channel")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.photos.is_dir() or not any(WNID_NAME.match(p.name) for p in args.photos.iterdir()):
        sys.exit(
            f"bench/labels.py needs a folder of labelled photos named <wnid>_<name>.JPEG "
            f"(the wnid is the true class), e.g. the 200 photos of {PHOTOS}; "
            f"{args.photos} is absent or has none. Give one with --photos."
        )
    from pipeline.store.activations_reader import ActivationsStore

    store = ActivationsStore(extract(args.photos, args.cache))
    hierarchy = ClassHierarchy.from_file(IMAGENET1K)
    synsets = SynsetMatrix(hierarchy)
    truth = true_classes(store.images["path"], hierarchy)
    predicted = np.asarray(store.predicted_classes())
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(truth))
    halves = order[: len(order) // 2], order[len(order) // 2 :]
    folds = [(halves[0], halves[1]), (halves[1], halves[0])]
    layers = [name for name in store.layers]
    print(
        f"{len(truth)} photos ({(truth >= 0).sum()} with a known class, "
        f"{(predicted == truth).mean():.0%} predicted right), {len(layers)} layers, "
        f"two folds of {len(halves[0])}/{len(halves[1])}, top {args.top} held-out images"
    )
    with store:
        rows = [store.predictions(row) for row in range(len(truth))]
        top_ids = np.array([p.ids for p in rows])
        top_logits = np.array([p.logits for p in rows])
        per_layer = {
            layer: (
                np.asarray(store.per_image(layer, "attr_predicted").compute()),
                np.asarray(store.per_image(layer, "max").compute()),
            )
            for layer in layers
        }
    summary = []
    header = (
        f"{'rule':<32} {'layer':<12} {'labelled':>8} {'median':>7} {'mean':>6} {'shuffled':>8} {'(mean)':>7}"
    )
    for rule in RULES:
        settings = LabelSettings(rule=rule)
        named, units = logit_check(hierarchy, synsets, settings, top_ids, top_logits)
        print(f"\n{header}")
        pooled, pooled_shuffled, labelled, channels = [], [], 0, 0
        for layer in layers:
            attribution, activations = per_layer[layer]
            found, shuffled, count = [], [], 0
            for train, test in folds:
                evidence = class_evidence(attribution, activations, predicted, train, len(hierarchy.classes))
                labels = label_units(hierarchy, evidence, settings, synsets=synsets)
                count += sum(label.synset is not None for label in labels)
                found.append(precision(labels, synsets, activations, truth, test, args.top))
                given = [i for i, label in enumerate(labels) if label.synset is not None]
                mixed = list(labels)
                for i, j in zip(given, np.random.default_rng(args.seed).permutation(given)):
                    mixed[i] = labels[j]
                shuffled.append(precision(mixed, synsets, activations, truth, test, args.top))
            found, shuffled = np.concatenate(found), np.concatenate(shuffled)
            pooled.append(found)
            pooled_shuffled.append(shuffled)
            labelled += count
            channels += 2 * activations.shape[1]
            print(
                f"{rule:<32} {layer:<12} {count / (2 * activations.shape[1]):8.0%} "
                f"{_median(found):7.2f} {_mean(found):6.2f} {_median(shuffled):8.2f} {_mean(shuffled):7.2f}"
            )
        pooled, pooled_shuffled = np.concatenate(pooled), np.concatenate(pooled_shuffled)
        print(
            f"{rule:<32} {'all':<12} {labelled / channels:8.0%} {_median(pooled):7.2f} "
            f"{_mean(pooled):6.2f} {_median(pooled_shuffled):8.2f} {_mean(pooled_shuffled):7.2f}   "
            f"logit check {named}/{units} = {named / max(units, 1):.1%}"
        )
        summary.append(
            (_mean(pooled) - _mean(pooled_shuffled), rule, labelled / channels, named / max(units, 1))
        )
    print("\nrule                             mean precision - shuffled   labelled   logit check")
    for margin, rule, share, logit in sorted(summary, reverse=True):
        verdict = "PASS" if margin > 0 and logit >= 0.95 else "FAIL"
        print(f"{rule:<32} {margin:+26.3f} {share:10.0%} {logit:12.1%}  {verdict}")


def _median(values) -> float:
    return float(np.median(values)) if len(values) else float("nan")


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


if __name__ == "__main__":
    main()
