"""Benchmark of unit labels: precision on held-out labelled photos against a shuffled baseline.

    python bench/labels.py [--photos ../shared/datasets/imagenet-samples-200]
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
labelled channels of the layer, averaged over ``--shuffles`` seeded shuffles; the pooled mean
precision's p-value is the share of shuffles that reach it (a permutation test). Then A and B
swap, and both folds are pooled. A rule *beats its baseline* when p < 0.05.

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
from pipeline.labels.rule import DEFAULT_RULE, Evidence, LabelSettings, SynsetMatrix, label_units  # noqa: E402
from pipeline.ranking import top_order  # noqa: E402

# The development photos sit beside the checkout (not in a user's clone): pass --photos.
PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "imagenet-samples-200"
CACHE = Path("/tmp/model-atlas-labels-bench")
# (the score that chooses the synset, the confidence reported and thresholded at 0.2)
RULES = [
    ("coverage*participation", None),  # (a)
    ("auroc", None),  # (b)
    ("coverage*ic", None),  # (c)
    ("coverage*participation*ic", None),  # (a)(c)
    ("coverage*participation*ic", "coverage*participation"),  # (a) chosen with (c)
    ("coverage*participation*auroc", None),  # (a)(b)
    ("coverage*participation*auroc*ic", "coverage*participation*auroc"),  # (a)(b) chosen with (c)
    ("auroc*ic", None),  # (b)(c)
    ("lift", None),  # (a') coverage beyond chance
    ("lift*participation", None),  # (a') with participation
    ("lift*participation*ic", "lift*participation"),  # (a') chosen with (c)
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


def hit_table(activations, truth, rows, top: int, synsets: SynsetMatrix) -> np.ndarray:
    """``[C, S]``: the share of each channel's top held-out images (of ``rows``, by ``max``)
    whose true class is under each synset (an image of unknown class is never a hit)."""
    best = top_order(activations[rows], top, axis=0)  # [top, C]
    true = truth[rows][best]
    under = synsets.members[np.clip(true, 0, None)] * (true >= 0)[..., None]  # [top, C, S]
    return under.mean(axis=0)


def precisions(hits, labels, synsets: SynsetMatrix, shuffles: int, seed: int):
    """The labelled channels' precision ``[L]`` and, for ``shuffles`` permutations of their
    labels among them (seeded), the precision of the shuffled labels ``[shuffles, L]``."""
    column = {wnid: s for s, wnid in enumerate(synsets.ids)}
    channels = np.array([c for c, label in enumerate(labels) if label.synset is not None], int)
    columns = np.array([column[labels[c].synset] for c in channels], int)
    rng = np.random.default_rng(seed)
    mixed = np.array([rng.permutation(columns) for _ in range(shuffles)]).reshape(shuffles, len(columns))
    return hits[channels, columns], hits[channels[None, :], mixed]


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
    parser.add_argument("--shuffles", type=int, default=200, help="shuffled label assignments")
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
    header = f"{'layer':<12} {'labelled':>8} {'median':>7} {'mean':>6} {'shuffled':>8} {'(mean)':>7}"
    hits = {
        (layer, fold): hit_table(per_layer[layer][1], truth, test, args.top, synsets)
        for layer in layers
        for fold, (_, test) in enumerate(folds)
    }
    for chosen_by, confidence in RULES:
        settings = LabelSettings(rule=chosen_by, confidence=confidence)
        rule = chosen_by if confidence in (None, chosen_by) else f"{chosen_by}, confidence {confidence}"
        named, units = logit_check(hierarchy, synsets, settings, top_ids, top_logits)
        print(f"\nrule {rule}\n{header}")
        pooled, pooled_shuffled, labelled, channels, examples = [], [], 0, 0, {}
        for layer in layers:
            attribution, activations = per_layer[layer]
            found, shuffled = [], []
            for fold, (train, _) in enumerate(folds):
                evidence = class_evidence(attribution, activations, predicted, train, len(hierarchy.classes))
                labels = label_units(hierarchy, evidence, settings, synsets=synsets)
                real, mixed = precisions(hits[layer, fold], labels, synsets, args.shuffles, args.seed)
                found.append(real)
                shuffled.append(mixed)
            if layer in ("blocks.5.3", layers[-1]):
                examples[layer] = sorted(
                    ((label.confidence, c, label.text) for c, label in enumerate(labels) if label.synset),
                    reverse=True,
                )
            found, shuffled = np.concatenate(found), np.concatenate(shuffled, axis=1)
            pooled.append(found)
            pooled_shuffled.append(shuffled)
            labelled += len(found)
            channels += 2 * activations.shape[1]
            print(
                f"{layer:<12} {len(found) / (2 * activations.shape[1]):8.0%} {_median(found):7.2f} "
                f"{_mean(found):6.2f} {_median(shuffled[0]):8.2f} {_mean(shuffled):7.2f}"
            )
        pooled, pooled_shuffled = np.concatenate(pooled), np.concatenate(pooled_shuffled, axis=1)
        shuffled_means = pooled_shuffled.mean(axis=1) if pooled.size else np.full(args.shuffles, np.nan)
        p_value = (1 + np.sum(shuffled_means >= _mean(pooled))) / (1 + args.shuffles)
        print(
            f"{'all':<12} {labelled / channels:8.0%} {_median(pooled):7.2f} {_mean(pooled):6.2f} "
            f"{_median(pooled_shuffled[0]):8.2f} {_mean(pooled_shuffled):7.2f}   "
            f"p = {p_value:.3f} ({args.shuffles} shuffles); "
            f"logit check {named}/{units} = {named / max(units, 1):.1%}"
        )
        for layer, shown in examples.items():
            print(
                f"  most confident on {layer} (second fold): "
                + "; ".join(f"{c}: {text} ({confidence:.2f})" for confidence, c, text in shown[:4])
            )
        margin = _mean(pooled) - float(np.mean(shuffled_means))
        summary.append((margin, rule, labelled / channels, p_value, named / max(units, 1)))
    print(f"\n{'rule':<72} {'mean - shuffled':>15} {'p':>6} {'labelled':>8} {'logit check':>11}")
    for margin, rule, share, p_value, logit in sorted(
        summary, key=lambda row: -np.nan_to_num(row[0], nan=-1)
    ):
        verdict = "beats its baseline" if margin > 0 and p_value < 0.05 and logit >= 0.95 else "does not"
        verdict += " (shipped: DEFAULT_RULE)" if rule == DEFAULT_RULE else ""
        print(f"{rule:<72} {margin:+15.3f} {p_value:6.3f} {share:8.0%} {logit:11.1%}  {verdict}")


def _median(values) -> float:
    return float(np.median(values)) if len(values) else float("nan")


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


if __name__ == "__main__":
    main()
