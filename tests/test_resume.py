"""Resume: a run killed with SIGKILL mid-shards, or one with a broken shard, finishes with
the same results as an uninterrupted run, redoing only what was not finished.

Each run is the real workflow in a subprocess on a tiny model (a few seconds per job).
"""

import base64
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from tests.helpers.workflow import REPO, run_workflow, tiny_config, workflow_command, workflow_env

LOCAL_PROFILE = REPO / "workflow" / "profiles" / "local"

TINY_CONFIG = tiny_config(
    dataset={"kind": "bundled", "max_images": 6}, blocks={"enabled": False}, site={"enabled": False}
)
RUN = Path("results") / "tiny"
MERGED = ["activations.h5", "featurevis.h5"]


def command(workdir: Path, *extra: str) -> list[str]:
    """The command a user runs, with the local profile (on one core, to have time to kill it)."""
    return workflow_command(workdir, "--profile", str(LOCAL_PROFILE), "--cores", "1", *extra)


def run(workdir: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_workflow(workdir, "--profile", str(LOCAL_PROFILE), "--cores", "1", *extra, check=check)


def new_workdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.yaml").write_text(yaml.safe_dump(TINY_CONFIG))
    return path


def shard_files(workdir: Path) -> list[Path]:
    return sorted((workdir / RUN).glob("*/shards/**/*.h5"))


def datasets(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of an HDF5 file by name (virtual datasets read through to their shards)."""
    out = {}
    with h5py.File(path, "r") as fh:
        fh.visititems(
            lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
        )
    return out


def assert_same_results(workdir: Path, reference: Path) -> None:
    merged = [name for name in MERGED if (reference / RUN / name).exists()]
    assert merged, "the reference run produced no merged store"
    names = [p.relative_to(reference) for p in shard_files(reference)]
    assert [p.relative_to(workdir) for p in shard_files(workdir)] == names
    for rel in [RUN / name for name in merged] + names:
        got, want = datasets(workdir / rel), datasets(reference / rel)
        assert sorted(got) == sorted(want), rel
        for key in want:
            assert got[key].shape == want[key].shape, (rel, key)
            if want[key].dtype.kind in "fc":
                assert np.array_equal(got[key], want[key], equal_nan=True), (rel, key)
            else:
                assert (got[key] == want[key]).all(), (rel, key)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run of the tiny workflow."""
    workdir = new_workdir(tmp_path_factory.mktemp("reference"))
    run(workdir, "--cores", "2")  # the last --cores wins: two jobs at a time
    assert len(shard_files(workdir)) >= 3
    return workdir


def snakemake_marked_incomplete(workdir: Path) -> set[Path]:
    """Outputs of jobs Snakemake saw start but not finish.

    Read from its .snakemake/incomplete folder: one file per output, named by the
    urlsafe base64 of the output path (long names split into "@"-prefixed folders).
    """
    marks = workdir / ".snakemake" / "incomplete"
    names = set()
    for mark in (p for p in marks.rglob("*") if p.is_file()) if marks.is_dir() else ():
        encoded = "".join(part.lstrip("@") for part in mark.relative_to(marks).parts)
        try:
            names.add(workdir / base64.urlsafe_b64decode(encoded).decode())
        except ValueError:  # not a marker (e.g. a migration flag)
            continue
    return names


@pytest.mark.slow
def test_sigkill_mid_shards_then_same_command_finishes_identically(tmp_path, reference):
    workdir = new_workdir(tmp_path / "killed")
    total = len(shard_files(reference))
    proc = subprocess.Popen(
        command(workdir),
        cwd=REPO,
        env=workflow_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # its own process group: we kill all of it
    try:
        deadline = time.monotonic() + 300
        while len(shard_files(workdir)) < 2:
            assert proc.poll() is None, "the workflow ended before it could be killed"
            assert time.monotonic() < deadline, "no shard appeared"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and its running job, no cleanup
        proc.wait(timeout=60)

    done = shard_files(workdir)
    assert 2 <= len(done) < total, "kill the run in the middle of its shard jobs"
    assert not any((workdir / RUN / name).exists() for name in MERGED)
    finished = [p for p in done if p not in snakemake_marked_incomplete(workdir)]
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in finished}
    assert before, "at least one shard was finished and recorded before the kill"

    run(workdir)  # the same command again

    assert_same_results(workdir, reference)
    # Finished shards were kept, not redone.
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in finished} == before
    # The killed job's temporary file is gone once that shard was written again.
    assert not list((workdir / RUN).rglob("*.partial"))


def copy_of(reference: Path, path: Path) -> Path:
    shutil.copytree(reference, path, symlinks=True)
    return path


@pytest.mark.slow
def test_truncated_or_unfinished_shards_are_set_aside_and_redone_not_merged(tmp_path, reference):
    workdir = copy_of(reference, tmp_path / "broken")
    unfinished, truncated = sorted((workdir / RUN / "extract" / "shards").glob("*.h5"))[:2]
    with h5py.File(unfinished, "a") as fh:  # a writer that did not get to the end
        fh.attrs["complete"] = False
    with open(truncated, "r+b") as fh:  # a disk fault or a copy cut short: half a file
        fh.truncate(truncated.stat().st_size // 2)

    proc = run(workdir)

    # Both shards and the merged store that reads from them were set aside and made again.
    log = proc.stderr + proc.stdout
    for path in (unfinished, truncated, workdir / RUN / "activations.h5"):
        assert f"renamed to {path.name}.incomplete" in log
        assert path.with_name(path.name + ".incomplete").exists()
    assert "rule extract_shard" in log and "rule reduce_activations" in log
    with h5py.File(unfinished, "r") as fh:
        assert bool(fh.attrs["complete"])
    assert_same_results(workdir, reference)


@pytest.mark.slow
def test_merge_refuses_a_shard_made_with_other_settings(tmp_path, reference):
    workdir = copy_of(reference, tmp_path / "mixed")
    shard = sorted((workdir / RUN / "extract" / "shards").glob("*.h5"))[-1]
    with h5py.File(shard, "a") as fh:  # as if written by a run with another config
        fh.attrs["config_hash"] = "sha256:0123456789abcdef"
    store = workdir / RUN / "activations.h5"
    before = store.stat().st_mtime_ns

    proc = run(workdir, check=False)

    assert proc.returncode != 0
    # The shard's partial is made again (one shard alone has nothing to disagree with);
    # the merge, which reads every shard's header, refuses the mix.
    log = (workdir / RUN / "logs" / "reduce_merge" / "reduce_merge.log").read_text()
    assert shard.name in log and "other settings" in log
    assert not (workdir / RUN / "extract" / "merged.h5").exists()
    assert store.stat().st_mtime_ns == before  # the earlier, consistent store is not replaced


def planned_jobs(workdir: Path, config: dict) -> set[str]:
    """The rules a dry run of ``workdir`` with ``config`` would run."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    out = run(workdir, "--dry-run", "--quiet", "rules").stdout
    return {
        line.split()[0]
        for line in out.splitlines()
        if line.strip() and line.split()[-1].isdigit() and not line.startswith(("total", "job"))
    }


@pytest.mark.slow
def test_only_settings_that_change_a_result_rerun_its_jobs(tmp_path, reference):
    workdir = copy_of(reference, tmp_path / "rerun")
    # Speed settings and the YAML's key order change no result: nothing to do.
    faster = dict(
        reversed(
            list(
                {
                    **TINY_CONFIG,
                    "extract": {**TINY_CONFIG["extract"], "batch_size": 1, "num_workers": 1},
                }.items()
            )
        )
    )
    assert planned_jobs(workdir, faster) == set()
    # top_k only changes the reduction, not the extracted shards.
    more_examples = {**TINY_CONFIG, "extract": {**TINY_CONFIG["extract"], "top_k": 3}}
    planned = planned_jobs(workdir, more_examples)
    assert "reduce_activations" in planned and "extract_shard" not in planned
    # The feature visualizations' optimiser also draws the atlas's icons: a changed learning
    # rate re-renders both (the icons' params are FeaturevisSettings.ICON_KEYS), and leaves
    # the atlas's layout and the extraction alone.
    other_lr = {**TINY_CONFIG, "featurevis": {**TINY_CONFIG["featurevis"], "lr": 0.01}}
    planned = planned_jobs(workdir, other_lr)
    assert {"featurevis_shard", "atlas_render"} <= planned, planned
    assert not planned & {"atlas_layout", "extract_shard", "reduce_activations"}, planned


# Snakemake's own locks after a kill -9 (fast: no workflow run).
CLAIM = """
import sys, time
from pipeline.runtime import clear_stale_snakemake_locks
print(clear_stale_snakemake_locks(sys.argv[1]), flush=True)
if len(sys.argv) > 2:
    time.sleep(60)
"""


def claim(workdir: Path, hold: bool = False) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CLAIM, str(workdir), *(["hold"] if hold else [])],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )


def leave_stale_locks(workdir: Path) -> list[Path]:
    locks = workdir / ".snakemake" / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    for name in ("0.input.lock", "0.output.lock"):
        (locks / name).write_text("results/tiny/activations.h5\n")
    return sorted(locks.iterdir())


def test_locks_of_a_dead_run_are_removed(tmp_path):
    leave_stale_locks(tmp_path)
    proc = claim(tmp_path)
    assert proc.stdout.readline().strip() == "True" and proc.wait(timeout=30) == 0
    assert list((tmp_path / ".snakemake" / "locks").iterdir()) == []


def test_locks_of_a_live_run_are_kept(tmp_path):
    live = claim(tmp_path, hold=True)  # a running workflow's main process holds the claim
    try:
        assert live.stdout.readline().strip() == "False"  # nothing to remove yet
        locks = leave_stale_locks(tmp_path)
        second = claim(tmp_path)
        assert second.stdout.readline().strip() == "False" and second.wait(timeout=30) == 0
        assert sorted((tmp_path / ".snakemake" / "locks").iterdir()) == locks
    finally:
        live.send_signal(signal.SIGKILL)  # dies like a killed Snakemake: the claim goes with it
        live.wait(timeout=30)
    after = claim(tmp_path)
    assert after.stdout.readline().strip() == "True" and after.wait(timeout=30) == 0


@pytest.mark.slow
def test_report_of_a_finished_run(tmp_path, reference):
    workdir = copy_of(reference, tmp_path / "report")
    run(workdir, "--report", str(tmp_path / "report.html"))
    html = (tmp_path / "report.html").read_text()
    assert "extract_shard" in html and "reduce_activations" in html
