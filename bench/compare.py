"""Benchmark: the cost of comparing two models (pipeline/compare/job.py), and its memory.

Two synthetic runs of N images, each with one layer of C channels (run B's channels are run
A's, shuffled, scaled and with noise, so that every unit has a real match), written by the
real shard and store writers; then the real compare job: the minibatch CKA (batches of 256),
the correlations of the per-image maxima (dask, streamed), the chance threshold from split
halves, the best matches, the Hungarian matching and the best buddies, into compare.h5.

Each size runs in a fresh process (its peak RSS is the job's memory). Printed per size: the
time of each part, as a ratio to the baseline of the same process: reading both runs'
per-image arrays once (what any comparison must pay), and the peak RSS against the size of
those arrays in memory (float32, both quantities of both runs).

    .venv/bin/python bench/compare.py      # 10k images x 1,000 channels, and how it grows
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
SIZES = [  # (images, channels, layers): grow the images, then the channels, then the layers
    (2500, 1000, 1),
    (5000, 1000, 1),
    (10000, 1000, 1),
    (20000, 1000, 1),  # past one dask chunk of rows (8,192): memory stops growing with images
    (10000, 250, 1),
    (10000, 500, 1),
    (10000, 250, 4),
]


def write_run(folder: Path, layers: dict, ids: list[str], model: str) -> Path:
    """A run's activations store holding per-image ``max`` and ``mean`` only (one shard)."""
    from pipeline.store import provenance
    from pipeline.store.activations import ShardLayout, ShardSet, reduced_writer, shard_writer

    n = len(ids)
    described = [
        {"name": k, "channels": v["max"].shape[1], "height": 1, "width": 1} for k, v in layers.items()
    ]
    layout = ShardLayout(
        layers=described, quantities=["max", "mean"], class_names=["x"], start=0, stop=n, top=1
    )
    record = provenance(stage="bench", settings={}, model={"name": model, "weights": "synthetic"})
    shard = folder / "extract" / "shards" / f"0-{n}.h5"
    image = type("Image", (), {})
    records = []
    for image_id in ids:
        r = image()
        r.image_id, r.path, r.label = image_id, f"/bench/{image_id}.jpg", None
        records.append(r)
    summary = type("Summary", (), {"__len__": lambda self: n})()
    summary.layers, summary.top_ids, summary.top_logits = layers, np.zeros((n, 1)), np.zeros((n, 1))
    with shard_writer(shard, layout, settings=record, model_checksum="") as writer:
        writer.append(records, [-1] * n, summary)
    out = folder / "activations.h5"
    with reduced_writer(
        out, ShardSet([shard]), settings=record, model={"name": model, "weights": "s"}, aliases={}
    ):
        pass
    return out


def write(folder: Path, images: int, channels: int, layers: int) -> None:
    """The two synthetic runs of one size, in ``folder``/a and ``folder``/b."""
    rng = np.random.default_rng(0)
    ids = [f"img{i:06d}" for i in range(images)]
    run_a, run_b = {}, {}
    for layer in range(layers):
        a = rng.gamma(2.0, size=(images, channels)).astype(np.float32)
        b = a[:, rng.permutation(channels)] * 0.7 + rng.gamma(2.0, size=(images, channels)).astype(np.float32)
        run_a[f"layer{layer}"] = {"max": a, "mean": a / 3}
        run_b[f"layer{layer}"] = {"max": b, "mean": b / 3}
    write_run(folder / "a", run_a, ids, "A")
    write_run(folder / "b", run_b, ids, "B")


def read_baseline(folder: Path) -> dict:
    """Reading both runs' per-image arrays once, one layer at a time."""
    from pipeline.store.activations_reader import ActivationsStore

    start = time.perf_counter()
    for run in ("a", "b"):
        with ActivationsStore(folder / run / "activations.h5") as store:
            for name in store.layers:
                store.per_image(name, "max").compute(), store.per_image(name, "mean").compute()
    return {"read_s": time.perf_counter() - start}


def job(folder: Path) -> dict:
    """The CKA alone, then the whole job; the peak RSS of this process is the job's."""
    from pipeline.compare import CompareSettings
    from pipeline.compare import job as compare_job
    from pipeline.store.activations_reader import ActivationsStore

    paths = [folder / "a" / "activations.h5", folder / "b" / "activations.h5"]
    settings = CompareSettings()
    with ActivationsStore(paths[0]) as sa, ActivationsStore(paths[1]) as sb:
        members = [compare_job.Member(paths[0], sa), compare_job.Member(paths[1], sb)]
        compare_job.align_images(members)
        start = time.perf_counter()
        compare_job.cka_tables(members, settings, sa.num_images)
        cka_time = time.perf_counter() - start
    start = time.perf_counter()
    compare_job.run_compare(settings, paths, folder / "ab" / "compare.h5")
    total = time.perf_counter() - start
    return {
        "cka_s": cka_time,
        "job_s": total,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _step(step: str, folder: Path, *size) -> dict:
    command = [sys.executable, __file__, step, str(folder), *map(str, size)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out or "{}")


def main() -> None:
    if len(sys.argv) > 2:  # one step of one size, in its own process
        step, folder, size = sys.argv[1], Path(sys.argv[2]), [int(v) for v in sys.argv[3:]]
        found = {
            "write": lambda: write(folder, *size),
            "read": lambda: read_baseline(folder),
            "job": lambda: job(folder),
        }
        print(json.dumps(found[step]() or {}))
        return
    header = ("images", "channels", "layers", "read s", "CKA", "job", "job s", "peak MB", "arrays MB")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (7, 8, 6, 7, 6, 6, 6, 8, 9))))
    for images, channels, layers in SIZES:
        with tempfile.TemporaryDirectory() as tmp:
            _step("write", Path(tmp), images, channels, layers)
            found = {**_step("read", Path(tmp)), **_step("job", Path(tmp))}
        base, arrays = found["read_s"], 2 * 2 * images * channels * layers * 4 / 2**20
        print(
            f"{images:>7} {channels:>8} {layers:>6} {base:>7.2f} {found['cka_s'] / base:>5.1f}x "
            f"{found['job_s'] / base:>5.1f}x {found['job_s']:>6.1f} {found['peak_rss_mb']:>8.0f} "
            f"{arrays:>9.0f}"
        )
    print("CKA, job: times as ratios to `read s` (reading both runs' per-image arrays once, the floor);")
    print("peak MB: the job process's peak RSS; arrays MB: both runs' per-image max and mean as float32.")


if __name__ == "__main__":
    main()
