"""Benchmark of the extraction pass: ratios against the bare model, measured in one run.

    python bench/extract.py [--model efficientnet_lite0] [--size 128] [--batch 16] [--batches 4]

1. Throughput, on the same batches, rounds interleaved so that machine noise hits
   every method alike; each method's fastest round counts (the one least disturbed
   by other processes on a shared machine):
   * activation extraction (every layer: max, argmax, mean, top-5) vs a bare
     forward pass -- target >= 0.8x its images/s;
   * attribution extraction (the above plus gradient x activation of every layer
     towards the predicted class) vs a bare forward + backward to the input --
     target >= 0.8x.
2. Memory: a fresh process extracts N and then 10N synthetic 64 px images (with
   attribution, writing a shard file); its peak RSS (VmHWM) must differ by < 10%.

Prints one line per measurement and ends with PASS/FAIL per target. Needs no data.
Set MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 (the Makefile does).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.extract.extractor import Extractor  # noqa: E402
from pipeline.model import load_model  # noqa: E402


def peak_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def bare_forward(model, x):
    with torch.no_grad():
        model(x)


def bare_forward_backward(model, x):
    x = x.clone().requires_grad_(True)
    logits = model(x)
    target = logits.gather(1, logits.argmax(1, keepdim=True)).sum()
    torch.autograd.grad(target, x)


def throughput(args) -> dict:
    model = load_model(args.model, device=args.device)
    generator = torch.Generator().manual_seed(0)
    batches = [
        torch.rand(args.batch, 3, args.size, args.size, generator=generator) for _ in range(args.batches)
    ]
    methods = {
        "forward": lambda x: bare_forward(model, x),
        "extract": Extractor(model, "all", attribution="none"),
        "forward+backward": lambda x: bare_forward_backward(model, x),
        "extract+attribution": Extractor(model, "all", attribution="gradient"),
    }
    for fn in methods.values():  # warm-up: allocator, kernels, lazy init
        fn(batches[0])
    rounds = {name: [] for name in methods}
    for _ in range(args.rounds):
        for name, fn in methods.items():
            start = time.perf_counter()
            for x in batches:
                fn(x)
            rounds[name].append(time.perf_counter() - start)
    images = args.batch * args.batches
    rate = {name: images / min(times) for name, times in rounds.items()}
    for name, r in rate.items():
        spread = statistics.median(rounds[name]) / min(rounds[name])
        print(
            f"{name:<22} {r:8.1f} images/s  (best of {args.rounds} rounds of {images} images "
            f"at {args.size}px, batch {args.batch}; median round {spread:.2f}x slower)"
        )
    return {
        "activation_ratio": rate["extract"] / rate["forward"],
        "attribution_ratio": rate["extract+attribution"] / rate["forward+backward"],
    }


def memory_child(args) -> None:
    """Extract ``args.memory_child`` synthetic images into a shard; print the peak RSS."""
    from pipeline.images.dataset import ImageRecord
    from pipeline.store.activations import ShardLayout, shard_writer

    model = load_model(args.model, device=args.device)
    extractor = Extractor(model, "all", attribution="gradient")
    n, batch = args.memory_child, args.batch
    generator = torch.Generator().manual_seed(0)
    layers = [info.to_dict() for info in model.layers]

    with tempfile.TemporaryDirectory() as tmp:
        layout = ShardLayout(
            layers=layers,
            class_names=model.class_names,
            start=0,
            stop=n,
            quantities=["max", "argmax_y", "argmax_x", "mean", "attr_predicted"],
        )
        with shard_writer(
            Path(tmp) / f"0-{n}.h5", layout, settings={"bench": True}, model_checksum=model.checksum
        ) as writer:
            for start in range(0, n, batch):
                size = min(batch, n - start)
                x = torch.rand(size, 3, 64, 64, generator=generator)
                writer.append(
                    [
                        ImageRecord(f"synthetic{i:06d}", f"synthetic/{i}.png", None)
                        for i in range(start, start + size)
                    ],
                    [-1] * size,
                    extractor(x),
                )
    print(json.dumps({"images": n, "peak_rss_kb": peak_rss_kb()}))


def memory(args) -> float:
    peaks = {}
    for n in (args.memory_images, 10 * args.memory_images):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--model",
                args.model,
                "--device",
                args.device,
                "--batch",
                str(args.batch),
                "--threads",
                str(args.threads),
                "--memory-child",
                str(n),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        peaks[n] = json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_kb"]
        print(f"peak RSS extracting {n:>5} images at 64px: {peaks[n] / 1024:8.1f} MiB")
    small, large = peaks.values()
    return (large - small) / small


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=128, help="image side for the throughput runs")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=4, help="batches per round")
    parser.add_argument("--rounds", type=int, default=4)
    # One thread by default: on a shared machine a second thread waits at every
    # parallel region for a core someone else holds, which makes ratios meaningless.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--memory-images", type=int, default=64, help="N of the memory check (and 10N)")
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_child is not None:
        memory_child(args)
        return 0
    ratios = throughput(args)
    growth = memory(args)
    checks = [
        (
            "activation extraction / forward",
            ratios["activation_ratio"],
            ">= 0.80",
            ratios["activation_ratio"] >= 0.8,
        ),
        (
            "attribution extraction / forward+backward",
            ratios["attribution_ratio"],
            ">= 0.80",
            ratios["attribution_ratio"] >= 0.8,
        ),
        ("peak RSS growth 10N vs N", growth, "< 0.10", abs(growth) < 0.10),
    ]
    for name, value, target, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {value:.3f} (target {target})")
    return 0 if all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
