"""Conventions every store shares: kind, version, completeness, atomic writes, tables."""

import h5py
import numpy as np
import pytest

from pipeline.store import _format as fmt
from tests.helpers.provenance import record


def _write(path, version=1, **kw):
    with fmt.atomic_h5(
        path, "demo", version, settings=record({"steps": 8}), model_checksum="sha256:x", **kw
    ) as fh:
        fh.create_dataset("values", data=np.arange(4))
    return path


def test_written_file_carries_format_version_and_provenance(tmp_path):
    path = _write(tmp_path / "a.h5")
    with fmt.open_h5(path, "demo", (1,)) as fh:
        assert fh.attrs["format"] == "model-atlas.demo"
        assert fh.attrs["format_version"] == 1
        assert fh.attrs["complete"]
        assert fh.attrs["model_checksum"] == "sha256:x"
        assert fmt.settings_of(fh) == {"steps": 8}
        assert fh.attrs["config_hash"] == fmt.config_hash(record({"steps": 8}))
        assert "torch" in fmt.read_json_attr(fh, "package_versions")
        assert fh["values"][()].tolist() == [0, 1, 2, 3]


def test_reader_refuses_unknown_version_naming_file_and_versions(tmp_path):
    path = _write(tmp_path / "future.h5", version=7)
    with pytest.raises(fmt.StoreError, match=r"future\.h5.*version 7.*supported: 1"):
        fmt.check_file(path, "demo", (1,))


def test_reader_refuses_other_kind_missing_and_non_hdf5(tmp_path):
    path = _write(tmp_path / "a.h5")
    with pytest.raises(fmt.StoreError, match="expected a model-atlas.other file"):
        fmt.check_file(path, "other", (1,))
    with pytest.raises(fmt.StoreError, match="no such store file"):
        fmt.check_file(tmp_path / "nope.h5", "demo", (1,))
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(fmt.StoreError, match="not a readable HDF5 file"):
        fmt.check_file(tmp_path / "text.h5", "demo", (1,))


def test_crash_mid_write_leaves_nothing_that_looks_complete(tmp_path):
    path = tmp_path / "crash.h5"
    with pytest.raises(RuntimeError):
        with fmt.atomic_h5(path, "demo", 1) as fh:
            fh.create_dataset("half", data=np.zeros(3))
            raise RuntimeError("killed")
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_reader_refuses_incomplete_file(tmp_path):
    path = _write(tmp_path / "a.h5")
    with h5py.File(path, "a") as fh:
        fh.attrs["complete"] = False
    with pytest.raises(fmt.StoreError, match="incomplete"):
        fmt.check_file(path, "demo", (1,))


def test_tables_round_trip_text_and_numbers(tmp_path):
    path = tmp_path / "t.h5"
    with fmt.atomic_h5(path, "demo", 1) as fh:
        fmt.write_table(
            fh,
            "skipped",
            {
                "image_id": ["a/ü.jpg", "b.png"],
                "reason": ["zero-byte file", "truncated"],
                "size": np.array([0, 10]),
            },
        )
        fmt.write_table(fh, "empty", {"image_id": [], "reason": []})
    with fmt.open_h5(path, "demo", (1,)) as fh:
        assert fmt.read_table(fh["skipped"]) == {
            "image_id": ["a/ü.jpg", "b.png"],
            "reason": ["zero-byte file", "truncated"],
            "size": [0, 10],
        }
        assert fmt.read_table(fh["empty"]) == {"image_id": [], "reason": []}
    with pytest.raises(ValueError, match="differ in length"):
        with fmt.atomic_h5(tmp_path / "bad.h5", "demo", 1) as fh:
            fmt.write_table(fh, "t", {"a": [1, 2], "b": ["x"]})
