"""Process-level settings for a job: log file, progress bars, threads, device."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("pipeline")


@contextlib.contextmanager
def job_logging(
    log_file: str | None, threads: int | None = None, *, gpu: bool | None = None
) -> Iterator[None]:
    """Send logging, warnings and tqdm progress bars of one job to its log file.

    Exceptions are written to the log with their traceback and re-raised, so the
    workflow stops and the log says why.

    When ``MODEL_ATLAS_GPUS`` names a GPU pool (see :mod:`pipeline.runtime.gpu_pool`), the job
    holds one free device of it for its whole run, as the only GPU it sees (``cuda:0``).
    ``gpu=False`` opts a CPU-only job (a merge) out, so that it never waits for a GPU;
    a script passes ``gpu=bool(snakemake.resources.get("gpu", 0))``.
    """
    stream = open(log_file, "w", buffering=1) if log_file else sys.stderr
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    old_stderr = sys.stderr
    sys.stderr = stream  # tqdm writes to stderr: its bars land in the job log
    try:
        if threads:
            set_threads(threads)
        with _gpu_slot_for_job(gpu):
            yield
    except BaseException:
        stream.write(traceback.format_exc())
        raise
    finally:
        sys.stderr = old_stderr
        root.removeHandler(handler)
        if log_file:
            stream.close()


@contextlib.contextmanager
def _gpu_slot_for_job(gpu: bool | None) -> Iterator[None]:
    from pipeline.runtime.gpu_pool import gpu_slot

    if gpu is False:
        yield
        return
    with gpu_slot() as device:  # None, doing nothing, when no pool is configured
        if device is not None:
            log.info("GPU pool: this job uses device %s (CUDA_VISIBLE_DEVICES=%s)", device, device)
        yield


# Descriptors of the run-directory claims this process holds, kept open until it exits.
_CLAIMS: dict[str, int] = {}


def clear_stale_snakemake_locks(workdir: str | os.PathLike = ".") -> bool:
    """Remove the locks a killed Snakemake left in ``workdir``, if no live run holds them.

    Snakemake's locks (``.snakemake/locks``) record no process id, so after a ``kill -9``
    of Snakemake itself the next run refuses to start until ``snakemake --unlock``.
    Called by the workflow's main process, this takes an exclusive ``flock`` on
    ``.snakemake/model-atlas-main.lock`` and keeps it until the process exits; the kernel
    drops a flock when its holder dies, so getting it proves that every earlier run in
    this directory is dead and its locks are stale. Returns True when it removed locks.
    When another run holds the claim, or the file system has no flock (some Lustre
    mounts), nothing is touched and Snakemake's own lock check decides.
    """
    meta = Path(workdir) / ".snakemake"
    claim = str((meta / "model-atlas-main.lock").resolve())
    if claim in _CLAIMS:
        return False
    from pipeline.runtime.gpu_pool import try_flock

    meta.mkdir(parents=True, exist_ok=True)
    try:
        fd = try_flock(claim, 0o644)
    except OSError as exc:
        log.warning("cannot flock %s (%s): after a killed run, use `snakemake --unlock`", claim, exc)
        return False
    if fd is None:  # a live run holds the claim
        return False
    _CLAIMS[claim] = fd
    stale = sorted((meta / "locks").glob("*.lock"))
    for lock in stale:
        lock.unlink(missing_ok=True)
    return bool(stale)


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(threads)))


def resolve_device(name: str):
    """A torch.device for ``name``, with a clear error when it is not available here."""
    import torch

    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {name!r} requested but CUDA is not available on this machine; "
            "set `device: cpu` in the config"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"device {name!r} requested but MPS is not available; set `device: cpu`")
    return device
