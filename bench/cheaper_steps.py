"""Benchmark: the switches for cheaper render steps (issue 28), against eager in one run.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 .venv/bin/python bench/cheaper_steps.py

EfficientNet-Lite0 (real weights) through ``speed_up``, on ``--device`` (default the
CPU; on a GPU node, ``--device cuda`` measures the switches where they are meant to
pay); per layer, the ``fast`` preset's schedule (size, lr, ...) and a batch of channels,
``--steps`` steps with no redirected-gradient steps (so that ``compile`` runs on every
step). Variants:

* **eager**: the render loop as the workflow runs it (the baseline);
* **compile**: ``RenderOptions(compile=True)`` (:mod:`pipeline.optvis.compiled`);
* **channels_last input**: the normalised image batch made channels-last before the
  network (the weights already are, ``speed_up``);
* **amp**: ``RenderOptions(amp=True)``: bfloat16 autocast on CUDA; on a CPU it must
  change nothing, and its ratio shows the run-to-run noise (an A/A comparison);
* **batch2x**: twice the batch (channels repeated under their own item keys).

Each variant is rendered once untimed (the compile variant pays its compilation there,
printed), then the variants are timed in alternating rounds; the median per variant (ms
per item and step) and its ratio to eager's are printed, with the largest pixel
difference of its first items' images from eager's. On a shared machine read the
ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from pipeline.featurevis.presets import layer_stride
from pipeline.featurevis.render import render_options
from pipeline.featurevis.settings import FeaturevisSettings
from pipeline.model import load_model
from pipeline.optvis import objectives as obj
from pipeline.optvis.render import render
from pipeline.optvis.speedup import speed_up


class ChannelsLast(torch.nn.Module):
    """``normalize`` followed by a copy into the channels-last layout."""

    def __init__(self, normalize: torch.nn.Module):
        super().__init__()
        self.normalize = normalize

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.normalize(images).contiguous(memory_format=torch.channels_last)


def timed_render(model, layer: str, batch: int, options, channels_last: bool = False):
    """(seconds, images) of one render of ``batch`` items of ``layer``, item i on channel
    i modulo the layer's channels (the images come back on the CPU: the time includes
    waiting for a GPU)."""
    normalize = model.normalize
    if channels_last:
        model.normalize = ChannelsLast(normalize)
    try:
        start = time.perf_counter()
        channels = model.layer(layer).channels
        objective = obj.per_item([obj.channel(layer, i % channels) for i in range(batch)])
        result = render(model, objective, batch, options)
        return time.perf_counter() - start, result.images
    finally:
        model.normalize = normalize


def compare(model, name: str, settings: FeaturevisSettings, args) -> None:
    """Print one row per variant for layer ``name`` (see the module docstring)."""
    info = model.layer(name)
    schedule = settings.schedule(layer_stride(model.input_size, info.height), info.channels)
    base = dataclasses.replace(render_options(settings, schedule), steps=args.steps, relu_override_steps=0)
    batch = min(args.batch, info.channels)
    runs = {  # name: (options, channels-last input, batch)
        "eager": (base, False, batch),
        "compile": (dataclasses.replace(base, compile=True), False, batch),
        "channels_last": (base, True, batch),
        "amp": (dataclasses.replace(base, amp=True), False, batch),
        "batch2x": (base, False, 2 * batch),
    }
    runs = {k: v for k, v in runs.items() if k in args.variants}
    first = {k: timed_render(model, name, how[2], how[0], how[1]) for k, how in runs.items()}
    per_item = {k: [] for k in runs}
    for _ in range(args.rounds):
        for k, (options, channels_last, size) in runs.items():
            seconds = timed_render(model, name, size, options, channels_last)[0]
            per_item[k].append(seconds / size / args.steps)
    eager = statistics.median(per_item["eager"])
    for k in runs:
        median = statistics.median(per_item[k])
        diff = (first[k][1][:batch] - first["eager"][1]).abs().max().item()
        print(
            f"{name:11s} {schedule.image_size:3d} {k:14s} {1000 * median:7.1f} "
            f"{median / eager:8.2f} {diff:10.2e} {first[k][0]:.1f} s",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", nargs="+", default=["blocks.1.0", "blocks.4.2", "head"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--variants", nargs="+", default=["eager", "compile", "channels_last", "amp", "batch2x"]
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = speed_up(load_model("efficientnet_lite0", device=args.device))
    settings = FeaturevisSettings(preset="fast")
    print(
        f"efficientnet_lite0 on {model.device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, batch {args.batch}, {args.steps} steps, "
        f"median of {args.rounds} alternating rounds"
    )
    header = f"{'layer':11s} {'px':>3s} {'variant':14s} {'ms/item':>7s} {'vs eager':>8s} {'max |diff|':>10s}"
    print(f"{header} first call")
    for name in args.layers:
        compare(model, name, settings, args)


if __name__ == "__main__":
    main()
