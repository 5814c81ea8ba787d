"""Benchmark: batched + truncated feature visualization against one channel at a time.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 .venv/bin/python bench/featurevis.py

Every side uses the same engine (pipeline.optvis.render) on EfficientNet-Lite0 at 128 px:

* **batched**: ``batch`` channels of one layer per forward/backward pass, the forward
  pass stopped at that layer, through the network rewritten by ``speed_up`` (what the
  workflow does); at the config default batch and at ``--also-batch``;
* **one at a time**: one channel per call, full forward pass every step, through the
  same rewritten network (the strict comparison: only batching and truncation differ);
* **one at a time, as loaded**: the same, through the network as loaded (the Lucent
  way: no BatchNorm folding, padding copies, in-place ReLU6).

Each side runs ``--steps`` optimisation steps (512 is the real count; fewer are scaled
up linearly; the dearer redirected-ReLU steps, 16 of 512, keep their share), in
alternating rounds so that a change
in machine load hits both alike; the median round counts. Then it projects the time to
render every channel of every layer of Lite0 and of GoogLeNet (random weights: the
speed does not depend on them) from a short batched measurement per layer.
Timings on a shared machine are noisy: compare the ratio, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pipeline.model import load_model
from pipeline.optvis import objectives as obj
from pipeline.optvis.render import RELU_OVERRIDE_STEPS, RenderOptions, render
from pipeline.optvis.speedup import speed_up

FULL_STEPS = 512


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def options(steps: int, size: int) -> RenderOptions:
    """``steps`` at ``size`` px, with the redirected-ReLU steps (dearer than the rest) in the
    same share as in 512 steps."""
    return RenderOptions(
        steps=steps, size=size, relu_override_steps=round(RELU_OVERRIDE_STEPS * steps / FULL_STEPS)
    )


def batched_seconds(model, layer: str, channels: list[int], steps: int, size: int) -> float:
    objective = obj.per_item([obj.channel(layer, c) for c in channels])
    return timed(
        lambda: render(
            model, objective, len(channels), options(steps, size), item_keys=channels, truncate=True
        )
    )


def single_seconds(model, layer: str, channel: int, steps: int, size: int) -> float:
    return timed(
        lambda: render(
            model, obj.channel(layer, channel), 1, options(steps, size), item_keys=[channel], truncate=False
        )
    )


def per_layer(model, batch: int, steps: int, size: int) -> list[tuple[str, int, float]]:
    """``(layer, channels, seconds per channel at 512 steps)`` for every layer, batched + truncated."""
    rows = []
    for info in model.layers:
        n = min(batch, info.channels)
        seconds = batched_seconds(model, info.name, list(range(n)), steps, size)
        rows.append((info.name, info.channels, seconds / n * FULL_STEPS / steps))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layer", default="blocks.3.0")
    parser.add_argument("--batch", type=int, default=32, help="channels per pass (the config default)")
    parser.add_argument(
        "--also-batch",
        type=int,
        default=8,
        help="a second batch size to measure (0: none); 8 is about the best on a 2-core CPU",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=32,
        help="steps measured per round (scaled to 512; 1 in 32 with the ReLU override, as in 512)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--single-channels", type=int, default=2, help="channels rendered one at a time per round"
    )
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--projection-steps",
        type=int,
        default=8,
        help="steps per layer for the whole-model projections (0: skip them)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    as_loaded = load_model("efficientnet_lite0")
    model = speed_up(load_model("efficientnet_lite0"))  # what the workflow renders through
    batches = [args.batch] + ([args.also_batch] if args.also_batch else [])
    # Warm-up: first calls pay for allocations and kernel selection.
    batched_seconds(model, args.layer, [0, 1], 2, args.size)
    single_seconds(model, args.layer, 0, 2, args.size)
    single_seconds(as_loaded, args.layer, 0, 2, args.size)

    def one_at_a_time(net) -> float:
        return (
            sum(
                single_seconds(net, args.layer, c, args.steps, args.size) for c in range(args.single_channels)
            )
            / args.single_channels
        )

    rounds: dict[str, list[float]] = {}  # side -> seconds per channel, one entry per round
    for r in range(args.rounds):
        for b in batches:
            rounds.setdefault(f"batch {b}", []).append(
                batched_seconds(model, args.layer, list(range(b)), args.steps, args.size) / b
            )
        rounds.setdefault("one", []).append(one_at_a_time(model))
        rounds.setdefault("one, as loaded", []).append(one_at_a_time(as_loaded))
        print(
            f"round {r + 1} ({args.steps} steps), s/channel: "
            + ", ".join(f"{side} {times[-1]:.3f}" for side, times in rounds.items()),
            flush=True,
        )
    per_channel = {side: statistics.median(times) * FULL_STEPS / args.steps for side, times in rounds.items()}
    single, lucent = per_channel["one"], per_channel["one, as loaded"]
    batched = per_channel[f"batch {args.batch}"]
    print()
    print(
        f"model efficientnet_lite0, layer {args.layer}, image {args.size} px, "
        f"torch threads {torch.get_num_threads()}, "
        f"{args.steps} steps measured x {args.rounds} rounds (median), scaled to {FULL_STEPS}"
    )
    for b in batches:
        seconds = per_channel[f"batch {b}"]
        print(
            f"batched + truncated, batch {b:3d}        : {seconds:7.2f} s per channel "
            f"({1 / seconds:.3f} channels/s)  {single / seconds:4.1f}x  "
            f"{lucent / seconds:4.1f}x vs as loaded"
        )
    print(f"one channel, full forward (same engine) : {single:7.2f} s per channel")
    print(
        f"one channel, full forward, as loaded    : {lucent:7.2f} s per channel "
        "(no BatchNorm folding or other rewrites: the Lucent way)"
    )
    print(
        f"ratio at the default batch {args.batch}: {single / batched:.1f}x against the same engine "
        f"one channel at a time (target >= 5x); {lucent / batched:.1f}x against the model as loaded"
    )

    if args.projection_steps:
        # The one-at-a-time, full-forward cost is the same for every layer of a model.
        print(f"\nper layer, batched + truncated ({args.projection_steps} steps measured, scaled):")
        lite0 = per_layer(model, args.batch, args.projection_steps, args.size)
        for name, count, seconds in lite0:
            print(f"  {name:12s} {count:5d} ch  {seconds:6.2f} s/channel  {single / seconds:5.1f}x")
        googlenet = load_model("googlenet", weights="random")
        speed_up(googlenet)
        print()
        for name, rows in (
            ("efficientnet_lite0", lite0),
            (
                "googlenet (random weights)",
                per_layer(googlenet, args.batch, args.projection_steps, args.size),
            ),
        ):
            total = sum(count * seconds for _, count, seconds in rows)
            print(
                f"projected: every channel of {name}: {sum(c for _, c, _ in rows)} channels in "
                f"{len(rows)} layers, {total / 3600:.1f} h on this machine at 512 steps, batch {args.batch}"
            )


if __name__ == "__main__":
    main()
