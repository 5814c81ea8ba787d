"""Validation of the per-unit scores (issue 26, item 3) on a run's scores.h5.

    python bench/scores.py [RUN]   (default results/bench-200: the 200 labelled photos)

RUN is a run folder with activations.h5 and scores.h5 (the `scores` job run on it; for the
200 labelled photos: bench/labels.py's cached extraction with the demo's featurevis.h5,
see docs/PERFORMANCE.md). Prints, per layer, each score's quartiles; the Spearman rank
correlations between the scores (channels of every layer pooled); and flags a score that
is constant in a layer, or looks random: its split-half reliability (the same score
computed on two disjoint halves of the images, Spearman across channels) below 0.3.
Split halves are computed for the scores made from per-image data (selectivity,
fires_images, and label_precision with the true classes from the file names
`<wnid>_<name>`); the crop-based ones would need the model again and are not split.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from scipy.stats import spearmanr  # noqa: E402

from pipeline.labels.layers import layer_labels, model_hierarchy  # noqa: E402
from pipeline.scores import compute  # noqa: E402
from pipeline.store.activations_reader import ActivationsStore  # noqa: E402
from pipeline.store.scores import ScoresStore  # noqa: E402

SHOWN = (
    "strength",
    "specificity_margin",
    "selectivity",
    "clarity",
    "clarity_gain",
    "polysemanticity",
    "diversity_disagreement",
    "path_similarity",
    "path_flag",
    "label_precision",
    "fires_images",
    "fires_positions",
)
RANDOM_BELOW = 0.3


def split_half(store, layer, truth, labels_under):
    """Spearman across channels between two disjoint halves of the images, per score."""
    maxima = np.asarray(store.per_image(layer, "max").compute(), np.float64)
    rows = np.random.default_rng(0).permutation(len(maxima))
    halves = rows[: len(rows) // 2], rows[len(rows) // 2 :]
    found = {}
    sel = [compute.class_selectivity(maxima[h], truth[h])[0] for h in halves]
    fires = [compute.sparsity(maxima[h], None, np.zeros((maxima.shape[1], 1), bool))[0] for h in halves]
    # label precision on each half: each channel's top 8 images of the half by max
    prec = []
    for h in halves:
        order = np.argsort(-np.nan_to_num(maxima[h], nan=-np.inf), axis=0)[:8].T  # [C, 8]
        prec.append(compute.label_precision(labels_under, h[order], truth))
    for name, (a, b) in (("selectivity", sel), ("fires_images", fires), ("label_precision", prec)):
        ok = np.isfinite(a) & np.isfinite(b)
        found[name] = (
            spearmanr(a[ok], b[ok])[0] if ok.sum() > 3 and np.ptp(a[ok]) and np.ptp(b[ok]) else np.nan
        )
    return found, prec


def main(run: Path) -> None:
    from labels import true_classes  # bench/labels.py: classes from "<wnid>_<name>" file names

    with ActivationsStore(run / "activations.h5") as store, ScoresStore(run / "scores.h5") as scores:
        hierarchy, _ = model_hierarchy(store.class_names)
        truth = true_classes(store.images["path"], hierarchy)
        print(f"{run}: {len(truth)} images, {int((truth >= 0).sum())} with a true class\n")
        pooled = {name: [] for name in SHOWN}
        print(f"{'layer':<11} {'score':<22} {'q1':>7} {'median':>7} {'q3':>7}  split-half  flag")
        for layer in scores.layers():
            table = {k: np.asarray(v, np.float64) for k, v in scores.table(layer).items()}
            labels = layer_labels(store, layer)
            under = [
                None if lab is None or lab.synset is None else hierarchy.classes_under(lab.synset)
                for lab in (labels or [None] * len(table["channel"]))
            ]
            # label precision in sample (all images), with the true classes from the file names
            table["label_precision"] = compute.label_precision(under, store.top(layer).row, truth)
            halves, _ = split_half(store, layer, truth, under)
            for name in SHOWN:
                values = table[name]
                pooled[name].append(values)
                finite = values[np.isfinite(values)]
                if not len(finite):
                    print(f"{layer:<11} {name:<22} {'-':>7} {'-':>7} {'-':>7}")
                    continue
                q1, q2, q3 = np.percentile(finite, [25, 50, 75])
                half = halves.get(name, np.nan)
                flag = "constant" if np.ptp(finite) < 1e-9 else "random?" if half < RANDOM_BELOW else ""
                half_text = f"{half:10.2f}" if np.isfinite(half) else f"{'':>10}"
                print(f"{layer:<11} {name:<22} {q1:7.3g} {q2:7.3g} {q3:7.3g}  {half_text}  {flag}")
        print("\nSpearman rank correlation between scores, every layer's channels pooled:")
        columns = {name: np.concatenate(v) for name, v in pooled.items()}
        names = [n for n in SHOWN if np.isfinite(columns[n]).sum() > 10]
        print(" " * 22 + "".join(f"{n[:8]:>9}" for n in names))
        for a in names:
            cells = []
            for b in names:
                ok = np.isfinite(columns[a]) & np.isfinite(columns[b])
                rho = spearmanr(columns[a][ok], columns[b][ok])[0] if ok.sum() > 10 else np.nan
                cells.append(f"{rho:9.2f}")
            print(f"{a:<22}" + "".join(cells))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "results" / "bench-200")
