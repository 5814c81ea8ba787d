"""Benchmark: how close a render step and an extraction batch come to this CPU's own peak.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 .venv/bin/python bench/roofline.py

Measured in one run (so that a shared machine's load hits every figure alike; each
figure is the fastest of ``--rounds`` rounds, the one least disturbed):

1. **Peaks** (GFLOP/s, float32, the same torch threads): a large matmul (the dense
   ceiling), a 1x1 convolution (EfficientNet's expand and project layers: most of its
   FLOPs), and a 3x3 depthwise convolution (few FLOPs per byte: the memory-bound
   ceiling), all channels-last as the render loop runs them.
2. **A feature-visualization step** per layer: the render loop (:func:`pipeline.optvis.render.render`
   through ``speed_up``, the preset's image size and batch, pre-activation at capped
   layers) for ``--steps`` steps; and, separately, the bare truncated network's forward
   + backward to the image on a batch of the size the transforms hand it (the part of
   the step that is the network's).
3. **Extraction**: :class:`~pipeline.extract.extractor.Extractor` on every layer at the
   model's input size, batch 32, with the workflow's default gradient x activation
   attribution towards the predicted and the labelled class (one forward, two backward
   passes to the earliest tapped layer), and without attribution (forward only).

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode` on the very
call that is timed (convolutions and matmuls, forward and backward; a multiply-add is
2 FLOPs; element-wise work, resampling and the FFT are not counted, so their time shows
up as a lower achieved rate). Prints GFLOP/s and the ratio to each peak.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from pipeline.extract.extractor import Extractor
from pipeline.featurevis.presets import layer_stride
from pipeline.featurevis.render import render_options
from pipeline.featurevis.settings import FeaturevisSettings
from pipeline.model import load_model
from pipeline.optvis import objectives as obj
from pipeline.optvis.render import render
from pipeline.optvis.speedup import speed_up

# The standard transforms pad 12 and jitter 8 and 4: the network sees size + 12 px.
TRANSFORM_GROWTH = 12


def counted(fn) -> int:
    """FLOPs of one call of ``fn`` (convolutions and matmuls, forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def fastest(fn, rounds: int) -> float:
    """Seconds of the fastest of ``rounds`` calls of ``fn`` after one untimed call."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def rate(fn, rounds: int) -> tuple[float, float, float]:
    """(GFLOP per call, seconds per call, GFLOP/s)."""
    flops = counted(fn) / 1e9
    seconds = fastest(fn, rounds)
    return flops, seconds, flops / seconds


def peaks(rounds: int) -> dict[str, float]:
    """GFLOP/s of a 2048^3 matmul, a 1x1 and a 3x3 depthwise convolution (channels-last)."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    x = torch.randn(32, 192, 28, 28).to(memory_format=torch.channels_last)
    pointwise = torch.randn(192, 192, 1, 1).to(memory_format=torch.channels_last)
    depthwise = torch.randn(192, 1, 3, 3).to(memory_format=torch.channels_last)
    with torch.no_grad():
        return {
            "matmul 2048^3": rate(lambda: a @ b, rounds)[2],
            "conv 1x1 192->192, 32x28x28": rate(lambda: F.conv2d(x, pointwise), rounds)[2],
            "depthwise 3x3, 32x192x28x28": rate(
                lambda: F.conv2d(x, depthwise, padding=1, groups=192), rounds
            )[2],
        }


def featurevis_rows(model, layers, settings, steps: int, rounds: int):
    """Per layer: (name, px, batch, loop GFLOP/s, bare network GFLOP/s, loop s/step)."""
    rows = []
    for info in layers:
        schedule = settings.schedule(layer_stride(model.input_size, info.height), info.channels)
        options = render_options(settings, dataclasses.replace(schedule, steps=steps))
        batch = schedule.batch_size
        objective = obj.per_item([obj.channel(info.name, c % info.channels) for c in range(batch)])

        def loop(objective=objective, options=options, batch=batch):
            render(model, objective, batch, options, item_keys=range(batch))

        flops, seconds, loop_rate = rate(loop, rounds)
        side = schedule.image_size + TRANSFORM_GROWTH
        x = torch.rand(batch, 3, side, side).to(memory_format=torch.channels_last)
        tap = model.tap([info.name], pre_activation=settings.pre_activation)

        def bare(x=x, tap=tap, name=info.name):
            image = x.clone().requires_grad_(True)
            acts, _ = tap(model.normalize(image), truncate=True)
            acts[name].mean().backward()

        bare_rate = rate(bare, rounds)[2]
        rows.append((info.name, schedule.image_size, batch, loop_rate, bare_rate, seconds / steps, flops))
    return rows


def extraction_rows(model, batch: int, rounds: int):
    side = model.input_size
    images = torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(batch) % 1000
    rows = []
    for attribution in ("none", "gradient"):
        extractor = Extractor(model, "all", attribution=attribution)
        flops, seconds, achieved = rate(lambda e=extractor: e(images, labels), rounds)
        rows.append((attribution, flops, seconds, achieved))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--layers", nargs="*", default=["blocks.1.0", "blocks.3.0", "blocks.5.2", "blocks.6.0", "head"]
    )
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--steps", type=int, default=4, help="render steps timed per layer")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--extract-batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    peak = peaks(args.rounds)
    print(f"peaks, float32, {torch.get_num_threads()} torch threads (GFLOP/s):")
    for name, value in peak.items():
        print(f"  {name:32s} {value:8.1f}")
    dense, depthwise = peak["matmul 2048^3"], peak["depthwise 3x3, 32x192x28x28"]

    model = speed_up(load_model("efficientnet_lite0"))
    settings = FeaturevisSettings(preset=args.preset)
    print(
        f"\nfeaturevis step, preset {args.preset}, {args.steps} steps (loop = the whole render; "
        f"bare = the truncated network's forward + backward at size + {TRANSFORM_GROWTH} px)"
    )
    print(
        f"{'layer':12s} {'px':>4s} {'batch':>5s} {'GFLOP/step':>10s} {'s/step':>7s} {'loop GF/s':>9s} "
        f"{'bare GF/s':>9s} {'loop/matmul':>11s} {'loop/dw':>7s} {'loop/bare':>9s}"
    )
    for name, px, batch, loop_rate, bare_rate, per_step, flops in featurevis_rows(
        model, [model.layer(n) for n in args.layers], settings, args.steps, args.rounds
    ):
        print(
            f"{name:12s} {px:4d} {batch:5d} {flops / args.steps:10.2f} {per_step:7.3f} {loop_rate:9.1f} "
            f"{bare_rate:9.1f} {loop_rate / dense:11.2f} {loop_rate / depthwise:7.2f} "
            f"{loop_rate / bare_rate:9.2f}",
            flush=True,
        )

    plain = load_model("efficientnet_lite0")  # extraction runs the network as loaded
    print(f"\nextraction, every layer, {plain.input_size} px, batch {args.extract_batch}")
    print(
        f"{'attribution':12s} {'GFLOP':>7s} {'s/batch':>8s} {'GF/s':>7s} {'/matmul':>7s} {'/dw':>6s} "
        f"{'img/s':>6s}"
    )
    for attribution, flops, seconds, achieved in extraction_rows(plain, args.extract_batch, args.rounds):
        print(
            f"{attribution:12s} {flops:7.1f} {seconds:8.3f} {achieved:7.1f} {achieved / dense:7.2f} "
            f"{achieved / depthwise:6.2f} {args.extract_batch / seconds:6.1f}"
        )


if __name__ == "__main__":
    main()
