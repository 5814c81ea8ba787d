"""The GPU pool gives each concurrent job its own device (fake ids: no GPU needed)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.runtime import gpu_pool, job_logging
from pipeline.runtime.gpu_pool import GpuPoolTimeout, gpu_slot, pool_from_env

REPO = Path(__file__).resolve().parents[1]

# A job: take a slot, report the device it sees, hold the slot until told to release it.
HOLDER = """
import os, sys, time
from pathlib import Path
from pipeline.runtime.gpu_pool import gpu_slot
out = Path(sys.argv[1])
with gpu_slot(timeout=60, poll=0.05) as device:
    # Written then renamed, so that the test never reads a half-written file.
    (out / (sys.argv[2] + ".tmp")).write_text(os.environ["CUDA_VISIBLE_DEVICES"])
    (out / (sys.argv[2] + ".tmp")).rename(out / (sys.argv[2] + ".device"))
    while not (out / (sys.argv[2] + ".release")).exists():
        time.sleep(0.02)
"""


@pytest.fixture
def pool_env(tmp_path, monkeypatch):
    """A fake four-id pool with its own lock folder, inherited by child processes."""

    def configure(ids):
        monkeypatch.setenv(gpu_pool.POOL_ENV, ids)
        monkeypatch.setenv(gpu_pool.LOCK_DIR_ENV, str(tmp_path / "locks"))
        return tmp_path

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return configure


def start_job(out: Path, name: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(out), name], cwd=REPO)


def wait_for(predicate, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def devices_seen(out: Path) -> dict[str, str]:
    return {p.stem: p.read_text() for p in out.glob("*.device")}


def release(out: Path, name: str, proc: subprocess.Popen) -> None:
    (out / f"{name}.release").touch()
    assert proc.wait(timeout=30) == 0


def test_concurrent_processes_get_distinct_devices(pool_env):
    out = pool_env("3,5,7")
    jobs = {name: start_job(out, name) for name in ("a", "b", "c")}
    try:
        wait_for(lambda: len(devices_seen(out)) == 3, "three jobs to hold a device")
        assert sorted(devices_seen(out).values()) == ["3", "5", "7"]
    finally:
        for name, proc in jobs.items():
            release(out, name, proc)


def test_extra_job_waits_for_a_released_device_and_reuses_it(pool_env):
    out = pool_env("0,1")
    first = {name: start_job(out, name) for name in ("a", "b")}
    wait_for(lambda: len(devices_seen(out)) == 2, "two jobs to hold both devices")
    late = start_job(out, "c")
    try:
        # The third job cannot take a device while both are held: give it time to try.
        time.sleep(1.0)
        assert "c" not in devices_seen(out) and late.poll() is None
        freed = devices_seen(out)["b"]
        release(out, "b", first.pop("b"))
        wait_for(lambda: "c" in devices_seen(out), "the waiting job to get the freed device")
        assert devices_seen(out)["c"] == freed
    finally:
        release(out, "c", late)
        for name, proc in first.items():
            release(out, name, proc)


def test_killed_holder_frees_its_device(pool_env):
    out = pool_env("0")
    holder = start_job(out, "a")
    wait_for(lambda: "a" in devices_seen(out), "the job to hold the device")
    holder.kill()  # SIGKILL: no cleanup code runs, the kernel drops the flock
    holder.wait(timeout=30)
    with gpu_slot(timeout=5, poll=0.05) as device:
        assert device == "0"


def test_slot_sets_and_restores_cuda_visible_devices(pool_env, monkeypatch):
    pool_env("4,2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "9")
    with gpu_slot() as first:
        assert first == "4" and os.environ["CUDA_VISIBLE_DEVICES"] == "4"
        with gpu_slot() as second:  # a second open file description conflicts like a process
            assert second == "2" and os.environ["CUDA_VISIBLE_DEVICES"] == "2"
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "4"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "9"


def test_slot_is_released_after_an_exception(pool_env):
    pool_env("0")
    with pytest.raises(KeyError):
        with gpu_slot():
            raise KeyError("job failed")
    with gpu_slot(timeout=0) as device:
        assert device == "0"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_full_pool_times_out_with_a_clear_error(pool_env):
    pool_env("0")
    with gpu_slot():
        with pytest.raises(GpuPoolTimeout, match="MODEL_ATLAS_GPUS=0 stayed busy"):
            with gpu_slot(timeout=0.2, poll=0.05):
                pass


def test_no_pool_means_no_change(monkeypatch):
    monkeypatch.delenv(gpu_pool.POOL_ENV, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    with gpu_slot() as device:
        assert device is None and os.environ["CUDA_VISIBLE_DEVICES"] == "1"


@pytest.mark.parametrize("value", ["0,,1", "0,1,0", "0;1", " , "])
def test_bad_pool_value_names_the_variable(monkeypatch, value):
    monkeypatch.setenv(gpu_pool.POOL_ENV, value)
    with pytest.raises(ValueError, match="MODEL_ATLAS_GPUS="):
        pool_from_env()


def test_uuid_style_ids_are_accepted(monkeypatch):
    monkeypatch.setenv(gpu_pool.POOL_ENV, "GPU-8a3f2c1d-0000-1111, MIG-GPU-ab-1-0")
    assert pool_from_env() == ["GPU-8a3f2c1d-0000-1111", "MIG-GPU-ab-1-0"]


def test_job_logging_takes_a_device_and_logs_it(pool_env, tmp_path):
    pool_env("6")
    log_file = tmp_path / "job.log"
    with job_logging(str(log_file)):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "6"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert "uses device 6" in log_file.read_text()


def test_cpu_jobs_can_opt_out_of_the_pool(pool_env, tmp_path):
    pool_env("6")
    with gpu_slot():  # every device busy: a CPU-only job must still run at once
        with job_logging(str(tmp_path / "merge.log"), gpu=False):
            assert os.environ["CUDA_VISIBLE_DEVICES"] == "6"  # the outer holder's, untouched


def test_job_logging_without_pool_leaves_environment_alone(monkeypatch, tmp_path):
    monkeypatch.delenv(gpu_pool.POOL_ENV, raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with job_logging(str(tmp_path / "job.log")):
        assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert "GPU pool" not in (tmp_path / "job.log").read_text()
