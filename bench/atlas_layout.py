"""Benchmark: the activation atlas's layout at 10k, 100k and 1M vectors (not a test).

The vectors are EfficientNet-Lite0's blocks.4.2 activations (112 channels) at every
position of real photos (``--photos``, default ../shared/datasets/imagenet-samples-200:
200 x 196 = 39,200 vectors); larger samples mix two real vectors each, with 2 % Gaussian
jitter, so that UMAP sees neither duplicates nor thousands of tight clusters. For each size
the script times what the layout job does, and prints the process's peak memory so far:

* ``umap``: :func:`pipeline.atlas.layout.embed` (cosine UMAP, seeded; ``--init``, default
  ``pca`` as in full.yaml: ``spectral`` ran out of 24 GB at 1M);
* ``levels``: binning into the 20, 40 and 80 grids with means, top classes and examples
  (:func:`pipeline.atlas.layout.layout_levels`);

and once, per cell: the attribution of a mean vector to the 1,000 classes through the rest
of the network (:func:`pipeline.atlas.attribution.mean_vector_attribution`) and an icon at
the ``fast`` preset's schedule for the layer (48 steps, 48 px: the demo's icons). Ratios
are against the 10k layout measured in the same run; the last lines project the cost of an
ImageNet-scale atlas (1M vectors, the article's) on this machine.

    .venv/bin/python bench/atlas_layout.py [--sizes 10000 100000 1000000] [--photos DIR] [--init pca]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LAYER = "blocks.4.2"
LEVELS = (20, 40, 80)


def real_vectors(photos: Path):
    """Every position of every photo at LAYER, and the loaded model."""
    import torch

    from pipeline.images.dataset import ImageDataset, open_source
    from pipeline.model import ModelSpec

    model = ModelSpec("efficientnet_lite0", "pretrained", "cpu").load()
    dataset = ImageDataset(open_source("folder", str(photos)).records, model.input_size)
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset)) if dataset[i]["ok"]])
    out = []
    for start in range(0, len(images), 32):
        act = model.activations(images[start : start + 32], [LAYER])[LAYER]
        out.append(act.permute(0, 2, 3, 1).reshape(-1, act.shape[1]).numpy())
    return np.concatenate(out), model


def peak_gb() -> float:
    """The process's peak resident memory (Linux; 0 elsewhere)."""
    status = Path("/proc/self/status")
    if not status.exists():
        return 0.0
    line = next((x for x in status.read_text().splitlines() if x.startswith("VmHWM")), "VmHWM: 0 kB")
    return int(line.split()[1]) / 1e6


def sample(base: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` vectors: real ones, or beyond ``len(base)`` mixes of two random real vectors
    (up to 50/50) with 2 % Gaussian jitter. Mixes spread between the real vectors; jittered
    copies alone would form tens of thousands of tight clusters, which UMAP lays out as
    separate components (the 1M run of an earlier version ran out of memory)."""
    if size <= len(base):
        return base[rng.choice(len(base), size, replace=False)]
    first, second = base[rng.integers(0, len(base), size)], base[rng.integers(0, len(base), size)]
    weight = rng.uniform(0.0, 0.5, (size, 1)).astype(np.float32)
    mixed = (1 - weight) * first + weight * second
    scale = 0.02 * base.std(axis=0, keepdims=True)
    return (mixed + rng.normal(size=mixed.shape).astype(np.float32) * scale).astype(np.float32)


def no_class_scores(means: np.ndarray) -> np.ndarray:
    """Zero scores for 1,000 classes: the attribution through the network is timed apart."""
    return np.zeros((len(means), 1000), np.float32)


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument(
        "--photos",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "shared/datasets/imagenet-samples-200",
    )
    parser.add_argument(
        "--init", choices=["pca", "spectral"], default="pca", help="UMAP's start (atlas.init)"
    )
    args = parser.parse_args()

    import torch

    from pipeline.atlas.attribution import mean_vector_attribution
    from pipeline.atlas.layout import embed, layout_levels
    from pipeline.featurevis.render import render_directions, render_options
    from pipeline.featurevis.settings import FeaturevisSettings

    torch.set_num_threads(2)
    base, model = real_vectors(args.photos)
    print(
        f"{len(base):,} real {LAYER} vectors of {base.shape[1]} channels from {args.photos}; init {args.init}"
    )
    rng = np.random.default_rng(0)

    # numba compiles UMAP's kernels on the first call in a process: paid once, shown apart.
    _, compile_s = timed(embed, sample(base, 5000, rng), n_neighbors=50, min_dist=0.05, init=args.init)
    print(f"first call (numba compile + 5k layout): {compile_s:.1f} s")

    rows, baseline = [], None
    for size in sorted(args.sizes):
        vectors = sample(base, size, rng)
        xy, umap_s = timed(embed, vectors, n_neighbors=50, min_dist=0.05, seed=0, init=args.init)
        _, levels_s = timed(layout_levels, xy, vectors, LEVELS, no_class_scores, min_count=3)
        baseline = baseline or (size, umap_s + levels_s)
        ratio = (umap_s + levels_s) / baseline[1]
        rows.append((size, umap_s, levels_s))
        print(
            f"{size:>9,} vectors: umap {umap_s:8.1f} s, levels {levels_s:6.1f} s; "
            f"{ratio:6.1f}x the {baseline[0]:,}-vector layout for {size / baseline[0]:.0f}x the vectors; "
            f"peak memory so far {peak_gb():.1f} GB",
            flush=True,
        )

    means = base[rng.choice(len(base), 64, replace=False)]
    _, attribution_s = timed(mean_vector_attribution, model, LAYER, means)
    per_cell_attribution = attribution_s / len(means)
    settings = FeaturevisSettings(preset="fast", steps=48, image_size=48)
    schedule = settings.schedule(16)
    options = render_options(settings, schedule)
    _, icons_s = timed(
        render_directions, model, LAYER, torch.from_numpy(means[:16]), options, batch=16, cossim_pow=2.0
    )
    per_icon = icons_s / 16
    print(
        f"per cell: attribution to 1,000 classes {per_cell_attribution * 1000:.1f} ms, icon {per_icon:.2f} s"
    )

    size, umap_s, levels_s = rows[-1]
    cells = sum(side * side for side in LEVELS)  # an upper bound: every cell kept
    layout_min, attribution_min = (umap_s + levels_s) / 60, cells * per_cell_attribution / 60
    print(
        f"ImageNet-scale atlas ({size:,} vectors, levels {LEVELS}, at most {cells:,} cells) on this "
        f"machine: layout {layout_min:.1f} min + attribution {attribution_min:.1f} min + icons "
        f"{cells * per_icon / 3600:.1f} h on 2 CPU cores (the icons shard over GPUs: atlas.cells_per_job)"
    )


if __name__ == "__main__":
    main()
