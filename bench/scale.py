"""Benchmark: the reduction at ImageNet scale, on synthetic shards (not a test).

Writes shards in the real format (``model-atlas.activations-shard``) for EfficientNet-Lite0's
18 layers (3,120 channels) at 10,000, 50,000 and 200,000 images, with no model run: each
image has 32 latent "concepts" (normal), each channel a random mix of them plus noise,
ReLU-like (about a third of the values are 0) and a per-channel scale, so channels
correlate, top examples overlap across channels as in real data, and predicted classes
follow the concepts. Image files are 64 small JPEGs shared by all rows (the examples
stage decodes one per example image, as it would a real photo).

Then it runs the workflow's own jobs, each in its own process (wall time and peak memory
from ``wait4``): ``reduce_partial`` per shard, ``reduce_merge``, ``shard_examples`` per
shard (histograms, thumbnails, activation maps through the real model), ``reduce_activations``,
the site export, and queries (``Results.channel`` / ``Results.image`` in process, and the
CLI). It prints per stage: seconds, seconds per image, peak memory, sizes; ratios against
the smallest size measured in the same run; and the projection to 1.28 million images.

    .venv/bin/python bench/scale.py [--sizes 10000 50000 200000] [--work /tmp/scale]

Needs about 76 KB of disk per image (15 GB at 200,000) under ``--work``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHARD = 5000
CONCEPTS = 32
PHOTOS = 64
QUANTITIES = ["max", "argmax_y", "argmax_x", "min", "argmin_y", "argmin_x", "mean", "attr_predicted"]
IMAGENET_TRAIN = 1_281_167


# ---------------------------------------------------------------------------------
# Synthetic run
# ---------------------------------------------------------------------------------


def model_spec():
    from pipeline.model import ModelSpec

    return ModelSpec("efficientnet_lite0", "pretrained", "cpu")


def write_photos(folder: Path) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(PHOTOS):
        small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        path = folder / f"photo{i:02d}.jpg"
        Image.fromarray(small).resize((320, 240), Image.BICUBIC).save(path, quality=90)
        paths.append(path)
    return paths


class Row:
    def __init__(self, i: int, photos: list[Path]):
        self.image_id, self.path, self.label = f"synthetic/{i:07d}.jpg", str(photos[i % len(photos)]), None


class Summary:
    def __init__(self, layers, top_ids, top_logits):
        self.layers, self.top_ids, self.top_logits = layers, top_ids, top_logits

    def __len__(self):
        return len(self.top_ids)


def synthetic_shard(start: int, stop: int, layers: list[dict], mixes: dict, classes: np.ndarray) -> Summary:
    """Per-image arrays of rows ``[start, stop)``, seeded by ``start``."""
    import torch

    rng = np.random.default_rng([7, start])
    n = stop - start
    concepts = rng.standard_normal((n, CONCEPTS)).astype(np.float32)
    out = {}
    for layer in layers:
        name, c, h, w = layer["name"], layer["channels"], layer["height"], layer["width"]
        weights, bias, scale = mixes[name]
        pre = concepts @ weights + bias + 0.5 * rng.standard_normal((n, c), dtype=np.float32)
        peak = np.maximum(pre, 0) * scale
        position = rng.integers(0, h * w, (4, n, c))
        out[name] = {
            "max": peak,
            "argmax_y": position[0] // w,
            "argmax_x": position[1] % w,
            "min": peak - scale * (1 + np.abs(rng.standard_normal((n, c), dtype=np.float32))),
            "argmin_y": position[2] // w,
            "argmin_x": position[3] % w,
            "mean": 0.3 * peak,
            "attr_predicted": 0.01 * peak * rng.standard_normal((n, c), dtype=np.float32),
        }
        out[name] = {q: torch.from_numpy(np.ascontiguousarray(v)) for q, v in out[name].items()}
    logits = concepts @ classes
    top = np.argsort(-logits, axis=1)[:, :5]
    top_logits = np.take_along_axis(logits, top, 1)
    return Summary(out, torch.from_numpy(top.astype(np.int32)), torch.from_numpy(top_logits))


def write_run(run: Path, images: int) -> list[Path]:
    """layers.json, the listing's shards and the photos of a synthetic run of ``images``."""
    from tqdm import tqdm

    from pipeline.model import run_discover_layers
    from pipeline.store.activations import ShardLayout, shard_writer

    (run / "model").mkdir(parents=True, exist_ok=True)
    run_discover_layers(model_spec(), run / "model" / "layers.json")
    loaded = model_spec().load()
    layers = [info.to_dict() for info in loaded.resolve_layers(None)]
    photos = write_photos(run / "photos")
    rng = np.random.default_rng(1)
    mixes = {
        layer["name"]: (
            (rng.standard_normal((CONCEPTS, layer["channels"])) / np.sqrt(CONCEPTS)).astype(np.float32),
            rng.normal(-0.5, 0.5, layer["channels"]).astype(np.float32),
            rng.lognormal(0.0, 0.5, layer["channels"]).astype(np.float32),
        )
        for layer in layers
    }
    classes = rng.standard_normal((CONCEPTS, len(loaded.class_names))).astype(np.float32)
    settings = {"model": loaded.name, "layers": [layer["name"] for layer in layers], "synthetic": True}
    paths = []
    for start in tqdm(range(0, images, SHARD), desc=f"synthetic shards ({images:,} images)", unit="shard"):
        stop = min(start + SHARD, images)
        layout = ShardLayout(layers, QUANTITIES, loaded.class_names, start, stop, top=5)
        path = run / "extract" / "shards" / f"{start}-{stop}.h5"
        with shard_writer(path, layout, settings=settings, model_checksum=loaded.checksum) as writer:
            rows = [Row(i, photos) for i in range(start, stop)]
            writer.append(rows, [-1] * len(rows), synthetic_shard(start, stop, layers, mixes, classes))
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------
# Jobs, each in its own process
# ---------------------------------------------------------------------------------


def job(name: str, args: dict) -> None:
    """The child side: run one job of the workflow."""
    from pipeline.extract.reduce_job import (
        run_reduce_assemble,
        run_reduce_merge,
        run_reduce_partial,
        run_shard_examples,
    )
    from pipeline.extract.settings import ExtractSettings

    settings = ExtractSettings(num_workers=args.get("workers", 0), map_size=args.get("map_size", 16))
    if name == "partial":
        run_reduce_partial(settings, args["shard"], args["out"])
    elif name == "merge":
        run_reduce_merge(settings, model_spec(), args["shards"], args["partials"], args["out"])
    elif name == "examples":
        run_shard_examples(settings, model_spec(), args["merged"], args["shard"], args["out"])
    elif name == "store":
        run_reduce_assemble(settings, args["shards"], args["merged"], args["examples"], args["out"])
    elif name == "site":
        from pipeline.site.job import run_site
        from pipeline.site.settings import SiteSettings

        run_site(SiteSettings(), args["run"], args["out"], progress=False)
    # Peak resident memory of this process (VmHWM restarts at exec; ru_maxrss would not).
    peak = [line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM")]
    print("PEAK_KB", peak[0].split()[1] if peak else 0)


def measured(name: str, args: dict) -> tuple[float, float]:
    """Run job ``name`` in a child process: (seconds, peak resident GB)."""
    env = dict(os.environ, MALLOC_MMAP_MAX_="0", MALLOC_TRIM_THRESHOLD_="100000000000")
    begin = time.perf_counter()
    child = subprocess.run(
        [sys.executable, __file__, "--job", name, json.dumps(args)], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - begin
    if child.returncode:
        raise SystemExit(f"job {name} failed:\n{child.stderr[-3000:]}")
    peak = [line for line in child.stdout.splitlines() if line.startswith("PEAK_KB")]
    return seconds, int(peak[-1].split()[1]) / 1e6  # KB -> GB


def size_gb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e9


def queries(run: Path) -> dict:
    """Median seconds of ``Results.channel`` and ``Results.image`` in process, and the CLI's."""
    from pipeline.query import open_results

    out = {}
    with open_results(run) as results:
        layers = list(results.layers)
        ids = results.image_ids
        for kind, call in (
            ("channel", lambda i: results.channel(layers[i % len(layers)], i % 16)),
            ("image", lambda i: results.image(ids[(i * 7919) % len(ids)])),
        ):
            times = []
            for i in range(7):
                begin = time.perf_counter()
                call(i)
                times.append(time.perf_counter() - begin)
            out[kind] = float(np.median(times))
    # The CLI's wall time includes starting Python and importing numpy and h5py.
    command = [str(Path(sys.executable).parent / "model-atlas"), "query", str(run)]
    for kind, what in (
        ("cli channel", ["channel", "blocks.5.3", "3"]),
        ("cli image", ["image", ids[len(ids) // 2]]),
    ):
        begin = time.perf_counter()
        subprocess.run([*command, *what, "--json"], check=True, stdout=subprocess.DEVNULL)
        out[kind] = time.perf_counter() - begin
    return out


def bench(images: int, work: Path, workers: int, maps_shards: int) -> dict:
    run = work / f"run-{images}"
    shutil.rmtree(run, ignore_errors=True)
    begin = time.perf_counter()
    shards = write_run(run, images)
    print(f"  wrote {len(shards)} shards in {time.perf_counter() - begin:.0f} s", flush=True)
    ranges = [p.stem for p in shards]
    parts = [run / "extract" / "partials" / f"{r}.h5" for r in ranges]
    examples = [run / "extract" / "examples" / f"{r}.h5" for r in ranges]
    merged = run / "extract" / "merged.h5"
    stages: dict[str, dict] = {}

    def per_shard(stage, runs):
        times, peaks = zip(*runs)
        stages[stage] = {"seconds": sum(times), "peak_gb": max(peaks), "jobs": len(times)}
        print(f"  {stage}: {sum(times):.1f} s in {len(times)} jobs, peak {max(peaks):.2f} GB", flush=True)

    def once(stage, name, args):
        seconds, peak = measured(name, args)
        stages[stage] = {"seconds": seconds, "peak_gb": peak, "jobs": 1}
        print(f"  {stage}: {seconds:.1f} s, peak {peak:.2f} GB", flush=True)

    names = {"shards": list(map(str, shards)), "merged": str(merged)}
    per_shard(
        "partials",
        [measured("partial", {"shard": str(s), "out": str(p)}) for s, p in zip(shards, parts)],
    )
    once("merge", "merge", {**names, "partials": list(map(str, parts)), "out": str(merged)})
    # Each example image costs a forward pass for its maps: measured on the first
    # `maps_shards` shards; the others store thumbnails and histograms only (map_size 0).
    runs = [
        measured(
            "examples",
            {"merged": str(merged), "shard": str(s), "out": str(e), "workers": workers, "map_size": map_size},
        )
        for i, (s, e) in enumerate(zip(shards, examples))
        for map_size in [16 if i < maps_shards else 0]
    ]
    per_shard("examples with maps", runs[:maps_shards])
    if runs[maps_shards:]:
        per_shard("examples, no maps", runs[maps_shards:])
    store = run / "activations.h5"
    once(
        "store",
        "store",
        {**names, "examples": list(map(str, examples)), "out": str(store)},
    )
    once("site", "site", {"run": str(run), "out": str(run / "site")})
    from pipeline.store.reduction import MERGED, LayersFile

    with LayersFile(merged, MERGED) as f:
        rows = np.unique(np.concatenate([f.layer(n).crop_rows for n in f.layers]))
    mapped = rows[rows < sum(min(SHARD, images - start) for start in range(0, images, SHARD)[:maps_shards])]
    return {
        "images": images,
        "shards": len(shards),
        "stages": stages,
        "example_images": len(rows),
        "mapped_images": len(mapped),
        "queries": queries(run),
        "shards_gb": size_gb(run / "extract" / "shards"),
        "store_gb": store.stat().st_size / 1e9,
        "site_gb": size_gb(run / "site"),
    }


def report(results: list[dict]) -> None:
    base = results[0]
    print("\nstage                 images   shards  seconds    s/image   ratio  peak GB")
    for r in results:
        for stage, s in r["stages"].items():
            first = base["stages"].get(stage)
            ratio = s["seconds"] / first["seconds"] if first else float("nan")
            print(
                f"{stage:<19} {r['images']:>8,} {r['shards']:>8} {s['seconds']:>8.1f} "
                f"{s['seconds'] / r['images'] * 1e3:>8.3f}ms {ratio:>6.2f}x {s['peak_gb']:>7.2f}"
            )
    print(
        "\nimages  example images (with maps)  shards GB  store GB  site GB  channel query  image query"
        "  CLI channel / image"
    )
    for r in results:
        q = r["queries"]
        print(
            f"{r['images']:>8,} {r['example_images']:>8,} ({r['mapped_images']:>6,}) {r['shards_gb']:>17.2f} "
            f"{r['store_gb']:>9.3f} {r['site_gb']:>8.3f} {q['channel']:>12.3f}s {q['image']:>11.3f}s "
            f"{q['cli channel']:>6.2f}s / {q['cli image']:.2f}s"
        )
    last = results[-1]
    s = last["stages"]
    scale = IMAGENET_TRAIN / last["images"]
    shards = -(-IMAGENET_TRAIN // SHARD)
    # The merge's part that grows with the shards, from the smallest and largest runs.
    grown = last["shards"] - base["shards"]
    merge_per_shard = (s["merge"]["seconds"] - base["stages"]["merge"]["seconds"]) / grown if grown else 0.0
    per_mapped = s["examples with maps"]["seconds"] / max(1, last["mapped_images"])
    print(
        f"\nProjection to ImageNet train ({IMAGENET_TRAIN:,} images, {shards} shards of {SHARD:,}), "
        "on this CPU:\n"
        f"  partials: {s['partials']['seconds'] * scale / 3600:.1f} CPU-hours in {shards} independent jobs "
        f"({s['partials']['seconds'] / last['shards']:.0f} s each)\n"
        f"  merge: {(s['merge']['seconds'] + merge_per_shard * (shards - last['shards'])) / 60:.1f} min "
        f"(one job: {merge_per_shard:.2f} s per shard more, measured between {base['shards']} and "
        f"{last['shards']} shards)\n"
        f"  examples: {per_mapped:.3f} s per example image with maps; at most 3,120 channels x 32 "
        f"examples = 99,840 images whatever the dataset: {per_mapped * 99_840 / 3600:.1f} CPU-hours "
        f"in {shards} jobs\n"
        f"  store: {s['store']['seconds']:.0f} s; site: {s['site']['seconds']:.0f} s"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/model-atlas-scale"))
    parser.add_argument("--workers", type=int, default=1, help="decoding workers of the examples jobs")
    parser.add_argument(
        "--maps-shards", type=int, default=1, help="shards whose examples jobs compute activation maps"
    )
    parser.add_argument("--shard", type=int, default=5000, help="images per shard (full.yaml: 5000)")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic runs")
    parser.add_argument("--job", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.job:
        job(args.job[0], json.loads(args.job[1]))
        return
    global SHARD
    SHARD = args.shard
    results = []
    for images in args.sizes:
        print(f"{images:,} images", flush=True)
        results.append(bench(images, args.work, args.workers, args.maps_shards))
        if not args.keep:
            shutil.rmtree(args.work / f"run-{images}" / "extract" / "shards", ignore_errors=True)
    report(results)


if __name__ == "__main__":
    main()
