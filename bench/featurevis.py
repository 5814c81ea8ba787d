"""Benchmark: batched + truncated feature visualization against one channel at a time.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 .venv/bin/python bench/featurevis.py

Both sides use the same engine (pipeline.optvis.render) on EfficientNet-Lite0 at 128 px:

* **batched**: ``batch`` channels of one layer per forward/backward pass, the forward
  pass stopped at that layer (what the workflow does);
* **one at a time**: one channel per call, full forward pass every step (the Lucent way).

Each side runs ``--steps`` optimisation steps (512 is the real count; fewer are scaled
up linearly, since every step costs the same), in alternating rounds so that a change
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

from pipeline.models import load_model
from pipeline.optvis import objectives as obj
from pipeline.optvis.render import render, speed_up

FULL_STEPS = 512


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def batched_seconds(model, layer: str, channels: list[int], steps: int, size: int) -> float:
    objective = obj.per_item([obj.channel(layer, c) for c in channels])
    return timed(lambda: render(model, objective, len(channels), steps=steps, size=size,
                                item_keys=channels, truncate=True))


def single_seconds(model, layer: str, channel: int, steps: int, size: int) -> float:
    return timed(lambda: render(model, obj.channel(layer, channel), 1, steps=steps, size=size,
                                item_keys=[channel], truncate=False))


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
    parser.add_argument("--steps", type=int, default=16, help="steps measured per round (scaled to 512)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--single-channels", type=int, default=2,
                        help="channels rendered one at a time per round")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--projection-steps", type=int, default=8,
                        help="steps per layer for the whole-model projections (0: skip them)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = load_model("efficientnet_lite0")
    speed_up(model)   # what the workflow does; both sides get it
    channels = list(range(args.batch))
    # Warm-up: first calls pay for allocations and kernel selection.
    batched_seconds(model, args.layer, channels[:2], 2, args.size)
    single_seconds(model, args.layer, 0, 2, args.size)

    per_batched, per_single = [], []
    for r in range(args.rounds):
        seconds = batched_seconds(model, args.layer, channels, args.steps, args.size)
        per_batched.append(seconds / len(channels))
        seconds = sum(single_seconds(model, args.layer, c, args.steps, args.size)
                      for c in range(args.single_channels))
        per_single.append(seconds / args.single_channels)
        print(f"round {r + 1}: batched {per_batched[-1]:.3f} s/channel, "
              f"one at a time {per_single[-1]:.3f} s/channel ({args.steps} steps)", flush=True)
    scale = FULL_STEPS / args.steps
    batched = statistics.median(per_batched) * scale      # seconds per channel at 512 steps
    single = statistics.median(per_single) * scale
    print()
    print(f"model efficientnet_lite0, layer {args.layer}, image {args.size} px, "
          f"batch {args.batch}, torch threads {torch.get_num_threads()}, "
          f"{args.steps} steps measured x {args.rounds} rounds, scaled to {FULL_STEPS}")
    print(f"batched + truncated : {batched:8.2f} s per channel  ({1 / batched:.3f} channels/s) at 512 steps")
    print(f"one channel, full   : {single:8.2f} s per channel  ({1 / single:.3f} channels/s) at 512 steps")
    print(f"ratio               : {single / batched:8.1f}x  (target >= 5x)")

    if args.projection_steps:
        # The one-at-a-time, full-forward cost is the same for every layer of a model.
        print(f"\nper layer, batched + truncated ({args.projection_steps} steps measured, scaled):")
        lite0 = per_layer(model, args.batch, args.projection_steps, args.size)
        for name, count, seconds in lite0:
            print(f"  {name:12s} {count:5d} ch  {seconds:6.2f} s/channel  {single / seconds:5.1f}x")
        googlenet = load_model("googlenet", weights="random")
        speed_up(googlenet)
        print()
        for name, loaded, rows in (
                ("efficientnet_lite0", model, lite0),
                ("googlenet (random weights)", googlenet,
                 per_layer(googlenet, args.batch, args.projection_steps, args.size))):
            total = sum(count * seconds for _, count, seconds in rows)
            print(f"projected: every channel of {name}: {sum(c for _, c, _ in rows)} channels in "
                  f"{len(rows)} layers, {total / 3600:.1f} h on this machine at 512 steps, batch {args.batch}")


if __name__ == "__main__":
    main()
