"""Benchmark: feature-visualization presets per layer, quality against time.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 .venv/bin/python bench/featurevis.py

For each layer of EfficientNet-Lite0 (real weights) and each preset
(:mod:`pipeline.featurevis.presets`), renders a seeded sample of the layer's channels
exactly as the workflow does (``render_batch`` through ``speed_up``, the preset's
per-layer schedule, pre-activation at capped layers) and prints:

* **s/ch**: wall seconds per channel (the sample rendered as one batch);
* **rank1 img**: the share of sampled channels whose own image excites them more than
  any other sampled channel's image does (the store's ``image_rank``, over the sample);
* **rank1 ch**: the share of sampled channels that out-respond every channel of the layer
  on their own image (the store's ``rank``: compares channels of different scales);
* **ratio**: median own-channel activation (spatial mean on the stored uint8 image, an
  independent forward pass) over the same median for the reference preset (``lucid``,
  512 steps: the same engine at Lucid's settings);

then projects the time for every channel of Lite0 and of GoogLeNet (random weights: the
speed does not depend on them; a few steps per layer, scaled) per preset. With
``--montage PATH`` it also writes a side-by-side PNG of a few channels per layer,
reference above each preset. Timings on a shared machine are noisy: read the ratios.
``--reference-cache DIR`` keeps each layer's reference renders (by layer, channels and
settings) so that sweeping variants does not pay for the 512-step reference again.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import random
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.featurevis.presets import layer_stride
from pipeline.featurevis.render import render_batch
from pipeline.featurevis.settings import FeaturevisSettings
from pipeline.model import load_model
from pipeline.optvis.speedup import speed_up
from pipeline.store.featurevis import image_ranks

REFERENCE = "lucid"


def sample_channels(n_channels: int, k: int, seed: int) -> list[int]:
    return sorted(random.Random(seed).sample(range(n_channels), min(k, n_channels)))


def measure(model, info, channels: list[int], settings: FeaturevisSettings, steps: int | None = None):
    """Render ``channels`` of layer ``info`` under ``settings``; ``steps`` overrides the
    schedule's (for timing only). Returns (seconds per channel, out dict, schedule)."""
    stride = layer_stride(model.input_size, info.height)
    schedule = settings.schedule(stride, info.channels)
    if steps is not None:
        schedule = settings.replace(steps=steps).schedule(stride, info.channels)
    start = time.perf_counter()
    out = render_batch(model, info.name, channels, settings, schedule)
    return (time.perf_counter() - start) / len(channels), out, schedule


def measure_reference(model, info, channels: list[int], settings: FeaturevisSettings, cache_dir: str | None):
    """:func:`measure` for the reference, read from ``cache_dir`` when rendered before with
    the same layer, channels, settings and torch (the printed seconds are then the first run's)."""
    if cache_dir is None:
        return measure(model, info, channels, settings)
    key = json.dumps([info.name, channels, dataclasses.asdict(settings), torch.__version__], sort_keys=True)
    path = Path(cache_dir) / f"reference-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    schedule = settings.schedule(layer_stride(model.input_size, info.height), info.channels)
    if path.exists():
        with np.load(path) as cached:
            out = {k: cached[k] for k in ("images", "responses", "rank", "activation")}
            return float(cached["seconds"]), out, schedule
    seconds, out, schedule = measure(model, info, channels, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = {k: np.asarray(out[k]) for k in ("images", "responses", "rank", "activation")}
    np.savez(path.with_suffix(".tmp.npz"), seconds=seconds, **kept)
    path.with_suffix(".tmp.npz").replace(path)  # a killed run leaves no half-written cache
    return seconds, out, schedule


def parse_variant(text: str) -> tuple[str, FeaturevisSettings]:
    """``NAME=PRESET:KEY=VALUE,...`` -> (NAME, the preset's settings with those keys set)."""
    name, _, rest = text.partition("=")
    preset, _, pairs = rest.partition(":")
    changes = {}
    for pair in filter(None, pairs.split(",")):
        key, _, value = pair.partition("=")
        if value.lower() in ("true", "false"):  # the switches: amp=true, compile=true
            changes[key] = value.lower() == "true"
            continue
        try:
            changes[key] = float(value) if "." in value else int(value)
        except ValueError:  # a name: param=maco, lr_schedule=cosine
            changes[key] = value
    return name, FeaturevisSettings(preset=preset, **changes)


def quality(out, channels: list[int]) -> tuple[float, float, float]:
    """(rank-1 share among the sample's images, rank-1 share among channels, median activation)."""
    image_rank = image_ranks(out["responses"], np.asarray(channels))
    return (
        float(np.mean(image_rank == 1)),
        float(np.mean(out["rank"] == 1)),
        float(np.median(out["activation"])),
    )


def project(model, variants: dict[str, FeaturevisSettings], steps: int, batch: int) -> dict[str, float]:
    """Seconds to render every channel of ``model`` per preset, from ``steps`` timed steps."""
    totals = dict.fromkeys(variants, 0.0)
    for info in model.layers:
        channels = list(range(min(batch, info.channels)))
        for preset, settings in variants.items():
            # One untimed step first: a layer's first pass pays for allocations.
            measure(model, info, channels, settings.replace(batch_size=batch), steps=1)
            full = settings.schedule(layer_stride(model.input_size, info.height), info.channels).steps
            seconds, _, _ = measure(model, info, channels, settings.replace(batch_size=batch), steps=steps)
            totals[preset] += seconds * full / steps * info.channels
    return totals


def montage(images: dict[tuple[str, str], np.ndarray], layers: list[str], presets: list[str], path: str):
    """One row per (layer, preset), ``cell`` px per image; labels on the left."""
    from PIL import Image, ImageDraw

    cell, label_w = 96, 190
    per_row = max(len(v) for v in images.values())
    canvas = Image.new(
        "RGB", (label_w + per_row * (cell + 4), len(layers) * len(presets) * (cell + 4)), "white"
    )
    draw = ImageDraw.Draw(canvas)
    y = 0
    for layer in layers:
        for preset in presets:
            draw.text((6, y + cell // 2 - 12), f"{layer}\n{preset}", fill="black")
            for i, image in enumerate(images[(layer, preset)]):
                tile = Image.fromarray(image).resize((cell, cell), Image.BICUBIC)
                canvas.paste(tile, (label_w + i * (cell + 4), y))
            y += cell + 4
    canvas.save(path)
    print(f"montage written to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", nargs="*", help="layers to sample (default: every layer)")
    parser.add_argument("--presets", nargs="+", default=["fast"], help=f"compared with {REFERENCE!r}")
    parser.add_argument(
        "--channels", type=int, default=8, help="sampled channels per layer (0: only the projections)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--projection-steps", type=int, default=8, help="timed steps per layer (0: skip)")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=PRESET:KEY=VALUE,...",
        help="also measure PRESET with config keys overridden (e.g. fast64=fast:image_size=64,steps=64)",
    )
    parser.add_argument(
        "--reference-cache", metavar="DIR", help="keep the reference renders here and reuse them"
    )
    parser.add_argument("--montage", help="write a side-by-side PNG here")
    parser.add_argument("--montage-layers", nargs="*", default=["stem", "blocks.2.0", "blocks.4.2", "head"])
    parser.add_argument("--montage-channels", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = speed_up(load_model("efficientnet_lite0"))
    variants = {REFERENCE: FeaturevisSettings(preset=REFERENCE)}
    variants.update({p: FeaturevisSettings(preset=p) for p in args.presets})
    variants.update(dict(parse_variant(text) for text in args.variant))
    presets = list(variants)
    layers = [model.layer(name) for name in args.layers] if args.layers else model.layers
    measure(model, layers[0], [0, 1], FeaturevisSettings(preset="fast"), steps=2)  # warm-up

    print(
        f"efficientnet_lite0, {args.channels} seeded channels per layer, torch threads "
        f"{torch.get_num_threads()}; ratio = median own activation / the {REFERENCE} preset's"
    )
    print(
        f"{'layer':12s} {'preset':8s} {'steps':>5s} {'px':>4s} {'s/ch':>7s} {'rank1 img':>9s} "
        f"{'rank1 ch':>8s} {'ratio':>6s}"
    )
    images: dict[tuple[str, str], np.ndarray] = {}
    ratios: dict[str, list[float]] = {p: [] for p in presets}
    for info in layers if args.channels else []:
        channels = sample_channels(info.channels, args.channels, args.seed)
        reference = None
        for preset in presets:
            if preset == REFERENCE:
                seconds, out, schedule = measure_reference(
                    model, info, channels, variants[preset], args.reference_cache
                )
            else:
                seconds, out, schedule = measure(model, info, channels, variants[preset])
            img1, ch1, median = quality(out, channels)
            reference = median if reference is None else reference
            ratio = median / reference if reference > 0 else float("nan")
            ratios[preset].append(ratio)
            images[(info.name, preset)] = out["images"][: args.montage_channels]
            print(
                f"{info.name:12s} {preset:8s} {schedule.steps:5d} {schedule.image_size:4d} {seconds:7.2f} "
                f"{img1:9.2f} {ch1:8.2f} {ratio:6.3f}",
                flush=True,
            )
    for preset in presets[1:] if args.channels else []:
        lowest, median = min(ratios[preset]), statistics.median(ratios[preset])
        print(f"{preset}: lowest ratio {lowest:.3f}, median {median:.3f}")
    if args.montage:
        shown = [name for name in args.montage_layers if (name, REFERENCE) in images]
        montage(images, shown, presets, args.montage)

    if args.projection_steps:
        googlenet = speed_up(load_model("googlenet", weights="random"))
        for name, net in (("efficientnet_lite0", model), ("googlenet (random weights)", googlenet)):
            totals = project(net, variants, args.projection_steps, batch=32)
            channels = sum(info.channels for info in net.layers)
            print(
                f"projected, every channel of {name} ({channels} channels, {len(net.layers)} layers), "
                f"one {torch.get_num_threads()}-thread process: "
                + ", ".join(f"{p} {s / 3600:.2f} h" for p, s in totals.items())
            )


if __name__ == "__main__":
    main()
