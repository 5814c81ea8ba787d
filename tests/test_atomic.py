"""Atomic store files: a crash never leaves a file that looks whole, and broken ones are found."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.store import _format as fmt
from tests.helpers.provenance import record

REPO = Path(__file__).resolve().parents[1]

# A writer that gets SIGKILLed halfway through its file: no Python cleanup code runs.
KILLED_WRITER = """
import sys, time
import numpy as np
from pipeline.store._format import atomic_h5
with atomic_h5(sys.argv[1], "demo", 1) as fh:
    fh.create_dataset("half", data=np.zeros(1000))
    fh.flush()
    print("writing", flush=True)
    time.sleep(60)
"""


def write_store(path, values=(0, 1, 2, 3), settings=None):
    with fmt.atomic_h5(
        path, "demo", 1, settings=record(settings or {"steps": 8}), model_checksum="sha256:x"
    ) as fh:
        fh.create_dataset("values", data=np.asarray(values))
    return Path(path)


def kill_writer_midway(path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "writing"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)


def partials(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(fmt.PARTIAL_SUFFIX))


def test_sigkilled_writer_leaves_only_a_hidden_partial(tmp_path):
    path = tmp_path / "shard.h5"
    kill_writer_midway(path)
    assert not path.exists()
    assert len(partials(tmp_path)) == 1 and partials(tmp_path)[0].startswith(".shard.h5.")
    assert sorted(tmp_path.glob("*.h5")) == []  # a merge globbing *.h5 never sees it


def test_next_write_removes_the_partial_a_killed_writer_left(tmp_path):
    path = tmp_path / "shard.h5"
    kill_writer_midway(path)
    kill_writer_midway(tmp_path / "other.h5")
    look_alike = tmp_path / ".shard.h5.v2.h5.123.partial"  # the leftover of "shard.h5.v2.h5"
    look_alike.write_bytes(b"")
    write_store(path)
    assert fmt.check_file(path, "demo", (1,)) == path
    # Only the same target's leftovers go; another file's partial belongs to its own next write.
    left = partials(tmp_path)
    assert len(left) == 2 and look_alike.name in left
    assert [name for name in left if name != look_alike.name][0].startswith(".other.h5.")


def test_file_at_final_name_appears_only_when_complete(tmp_path):
    path = tmp_path / "a.h5"
    with fmt.atomic_h5(path, "demo", 1) as fh:
        assert not path.exists()
        assert len(partials(tmp_path)) == 1
        fh.create_dataset("x", data=np.arange(3))
    assert path.exists() and partials(tmp_path) == []
    with h5py.File(path, "r") as fh:
        assert bool(fh.attrs["complete"]) is True


def test_store_records_config_hash_versions_and_model_checksum(tmp_path):
    path = write_store(tmp_path / "a.h5", settings={"steps": 8, "lr": 0.05})
    with fmt.open_h5(path, "demo", (1,)) as fh:
        assert fh.attrs["config_hash"] == fmt.config_hash(record({"lr": 0.05, "steps": 8}))
        assert fh.attrs["config_hash"] != fmt.config_hash(record({"lr": 0.05, "steps": 9}))
        assert fh.attrs["model_checksum"] == "sha256:x"
        versions = fmt.read_json_attr(fh, "package_versions")
        assert {"torch", "h5py", "numpy"} <= set(versions)


def truncate(path: Path, fraction: float = 0.5) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(int(size * fraction))


def test_truncated_store_is_refused_by_readers_and_reported(tmp_path):
    path = write_store(tmp_path / "cut.h5", values=np.arange(10_000))
    truncate(path)
    with pytest.raises(fmt.StoreError, match=r"cut\.h5: not a readable HDF5 file"):
        fmt.check_file(path, "demo", (1,))
    assert "HDF5 cannot read it" in fmt.incomplete_reason(path)


def test_complete_flag_false_is_reported(tmp_path):
    path = write_store(tmp_path / "flag.h5")
    with h5py.File(path, "a") as fh:
        fh.attrs["complete"] = False
    assert "complete" in fmt.incomplete_reason(path)


def test_whole_stores_and_foreign_hdf5_files_are_not_reported(tmp_path):
    assert fmt.incomplete_reason(write_store(tmp_path / "ok.h5")) is None
    with h5py.File(tmp_path / "foreign.h5", "w") as fh:  # not ours: no format attribute
        fh["x"] = 1
    assert fmt.incomplete_reason(tmp_path / "foreign.h5") is None


HOLDER = """
import sys, time, h5py
from tests.helpers.provenance import record
from tests.helpers.provenance import record
with h5py.File(sys.argv[1], "a"):
    print("holding", flush=True)
    time.sleep(60)
"""


def test_file_held_open_elsewhere_does_not_look_broken(tmp_path):
    path = write_store(tmp_path / "busy.h5")
    with h5py.File(path, "r"):  # this process: HDF5 refuses a second open with other lock flags
        assert fmt.incomplete_reason(path) is None
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"  # another process holds a write lock
        assert fmt.incomplete_reason(path) is None
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_set_aside_renames_only_incomplete_stores(tmp_path):
    good = write_store(tmp_path / "shards" / "0-2.h5")
    cut = write_store(tmp_path / "shards" / "2-4.h5", values=np.arange(10_000))
    truncate(cut)
    flagged = write_store(tmp_path / "merged.h5")
    with h5py.File(flagged, "a") as fh:
        fh.attrs["complete"] = False

    reported = fmt.set_aside_incomplete_stores(tmp_path, dry_run=True)
    assert [p for p, _ in reported] == [flagged, cut]
    assert cut.exists() and flagged.exists()  # a dry run only reports

    fmt.set_aside_incomplete_stores(tmp_path)
    assert good.exists() and not cut.exists() and not flagged.exists()
    assert (tmp_path / "shards" / "2-4.h5.incomplete").exists()
    assert (tmp_path / "merged.h5.incomplete").exists()
    assert fmt.set_aside_incomplete_stores(tmp_path) == []


def write_virtual_merge(path: Path, shards: list[Path]) -> Path:
    """A merged store whose dataset reads its rows from the shards (no copy), like a reduce."""
    layout = h5py.VirtualLayout(shape=(4 * len(shards),), dtype=np.int64)
    for i, shard in enumerate(shards):
        layout[4 * i : 4 * (i + 1)] = h5py.VirtualSource(
            os.path.relpath(shard, path.parent), "values", shape=(4,)
        )
    with fmt.atomic_h5(path, "merged", 1) as fh:
        fh.create_virtual_dataset("values", layout, fillvalue=-1)
    return path


def test_merged_store_reading_a_broken_shard_is_set_aside_with_it(tmp_path):
    shards = [write_store(tmp_path / "shards" / f"{i}.h5", values=np.arange(4) + 4 * i) for i in range(2)]
    merged = write_virtual_merge(tmp_path / "merged.h5", shards)
    with h5py.File(merged, "r") as fh:
        assert fh["values"][()].tolist() == list(range(8))
    assert fmt.incomplete_reason(merged) is None

    shards[1].unlink()  # as if it was never written: the merge would read -1 for its rows
    assert "missing files: shards/1.h5" in fmt.incomplete_reason(merged)

    write_store(shards[1], values=np.arange(10_000))
    truncate(shards[1])
    set_aside = fmt.set_aside_incomplete_stores(tmp_path)
    assert sorted(p.name for p, _ in set_aside) == ["1.h5", "merged.h5"]
    assert shards[0].exists() and not merged.exists()
