"""One GPU per job on a multi-GPU machine, through lock files.

Snakemake's ``resources: gpu=N`` is only a counter on a local machine: it never tells a
job *which* GPU to use (snakemake issue 281), so every job would land on GPU 0. When the
environment names a pool of devices::

    export MODEL_ATLAS_GPUS=0,1,2,3          # device ids as nvidia-smi numbers them
    export MODEL_ATLAS_GPU_LOCK_DIR=/tmp/x   # optional; default: a per-user temp folder

each job takes an exclusive ``flock`` on the lock file of one free device, exports
``CUDA_VISIBLE_DEVICES=<that id>`` (so the job sees its GPU as ``cuda:0``) and releases
the lock when it finishes. Locks, not counters, so that no bookkeeping survives a crash:
the kernel drops a ``flock`` when its process dies, even on SIGKILL, so a killed job
never leaves its GPU marked busy.

Use on one machine only: the lock folder must be on a local disk (``flock`` over NFS is
unreliable). On SLURM the scheduler sets ``CUDA_VISIBLE_DEVICES`` itself; leave
``MODEL_ATLAS_GPUS`` unset there.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

POOL_ENV = "MODEL_ATLAS_GPUS"
LOCK_DIR_ENV = "MODEL_ATLAS_GPU_LOCK_DIR"
TIMEOUT_ENV = "MODEL_ATLAS_GPU_TIMEOUT"
DEFAULT_TIMEOUT = 3600.0  # seconds; long enough to wait for a running shard to finish
POLL_INTERVAL = 0.5  # seconds between passes over the pool while every device is busy
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")  # 0, GPU-<uuid>, MIG-<uuid>

log = logging.getLogger(__name__)


class GpuPoolTimeout(TimeoutError):
    """Every device of the pool stayed busy for longer than the timeout."""


def pool_from_env(environ=None) -> list[str] | None:
    """The device ids named by ``MODEL_ATLAS_GPUS``, or None when no pool is configured.

    Raises ValueError (naming the variable and its value) for empty or repeated ids.
    """
    environ = os.environ if environ is None else environ
    raw = environ.get(POOL_ENV, "").strip()
    if not raw:
        return None
    ids = [part.strip() for part in raw.split(",")]
    bad = [i for i in ids if not _DEVICE_ID.match(i)]
    if bad:
        raise ValueError(
            f"{POOL_ENV}={raw!r}: invalid device id(s) {bad}; expected a comma-separated list such as 0,1,2,3"
        )
    if len(set(ids)) != len(ids):
        raise ValueError(f"{POOL_ENV}={raw!r}: a device is listed twice")
    return ids


def default_lock_dir() -> Path:
    """A per-user folder in the local temp dir (users must not share each other's locks)."""
    return Path(tempfile.gettempdir()) / f"model-atlas-gpu-locks-{os.getuid()}"


def lock_dir_from_env(environ=None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get(LOCK_DIR_ENV) or default_lock_dir())


def timeout_from_env(environ=None) -> float:
    environ = os.environ if environ is None else environ
    raw = environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV}={raw!r}: expected a number of seconds") from None
    if value < 0:
        raise ValueError(f"{TIMEOUT_ENV}={raw!r}: must not be negative")
    return value


@contextlib.contextmanager
def gpu_slot(
    devices: Sequence[str] | None = None,
    *,
    lock_dir: str | os.PathLike | None = None,
    timeout: float | None = None,
    poll: float = POLL_INTERVAL,
) -> Iterator[str | None]:
    """Hold one free device of the pool and make it the only GPU this process sees.

    ``devices``, ``lock_dir`` and ``timeout`` default to the environment
    (``MODEL_ATLAS_GPUS``, ``MODEL_ATLAS_GPU_LOCK_DIR``, ``MODEL_ATLAS_GPU_TIMEOUT``).
    Yields the device id taken, or None (doing nothing) when no pool is configured.
    Inside the block ``CUDA_VISIBLE_DEVICES`` is that id; on exit, also through an
    exception, the previous value is restored and the lock released.

    Must be entered before torch initialises CUDA (importing torch is fine; CUDA starts
    at the first GPU call), because CUDA reads ``CUDA_VISIBLE_DEVICES`` only then.
    Raises :class:`GpuPoolTimeout` when no device frees up within ``timeout`` seconds.
    """
    devices = pool_from_env() if devices is None else list(devices)
    if not devices:
        yield None
        return
    _refuse_if_cuda_started()
    lock_dir = Path(lock_dir) if lock_dir is not None else lock_dir_from_env()
    timeout = timeout_from_env() if timeout is None else float(timeout)
    lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    device, fd = _acquire(devices, lock_dir, timeout, poll)
    previous = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = device
    try:
        yield device
    finally:
        if previous is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = previous
        # Closing the descriptor drops the flock; the lock file stays for the next job.
        os.close(fd)


def _acquire(devices: list[str], lock_dir: Path, timeout: float, poll: float) -> tuple[str, int]:
    """Lock the first free device, polling the whole pool until ``timeout`` expires."""
    deadline = time.monotonic() + timeout
    announced = False
    while True:
        for device in devices:
            fd = _try_lock(lock_dir / f"gpu-{device}.lock")
            if fd is not None:
                return device, fd
        if time.monotonic() >= deadline:
            raise GpuPoolTimeout(
                f"all GPUs of {POOL_ENV}={','.join(devices)} stayed busy for {timeout:g} s "
                f"(lock files in {lock_dir}); run fewer GPU jobs at once (resources: gpu=N "
                f"no larger than the pool) or raise {TIMEOUT_ENV}"
            )
        if not announced:
            log.info("GPU pool %s: every device is busy, waiting up to %g s", ",".join(devices), timeout)
            announced = True
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))


def try_flock(path: str | os.PathLike, mode: int = 0o600) -> int | None:
    """An open descriptor holding an exclusive flock on ``path`` (created if need be), or
    None if another process holds it. Other OSErrors (no flock on this file system) raise."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def _try_lock(path: Path) -> int | None:
    """:func:`try_flock` on a device's lock file, noting who holds it."""
    fd = try_flock(path)
    if fd is None:
        return None
    # Who holds the device, for a human reading the lock folder; the lock is the flock.
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.ctime()}\n".encode())
    return fd


def _refuse_if_cuda_started() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        raise RuntimeError(
            "gpu_slot: CUDA is already initialised in this process, so "
            "CUDA_VISIBLE_DEVICES can no longer choose its GPU; enter the "
            "GPU slot (pipeline.runtime.job_logging) before any GPU work"
        )
