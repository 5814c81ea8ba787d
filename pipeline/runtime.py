"""Process-level settings for a job: log file, progress bars, threads, device."""
from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from pathlib import Path
from typing import Iterator

log = logging.getLogger("pipeline")


@contextlib.contextmanager
def job_logging(log_file: str | None, threads: int | None = None) -> Iterator[None]:
    """Send logging, warnings and tqdm progress bars of one job to its log file.

    Exceptions are written to the log with their traceback and re-raised, so the
    workflow stops and the log says why.
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
        yield
    except BaseException:
        stream.write(traceback.format_exc())
        raise
    finally:
        sys.stderr = old_stderr
        root.removeHandler(handler)
        if log_file:
            stream.close()


def set_threads(threads: int) -> None:
    import torch
    torch.set_num_threads(max(1, int(threads)))


def resolve_device(name: str):
    """A torch.device for ``name``, with a clear error when it is not available here."""
    import torch
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available on this machine; "
                           "set `device: cpu` in the config")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"device {name!r} requested but MPS is not available; set `device: cpu`")
    return device
