"""tools/compare_runs.py: the before/after check of refactors finds what changed and only that."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import h5py
import numpy as np

TOOL = Path(__file__).resolve().parent.parent / "tools" / "compare_runs.py"
spec = importlib.util.spec_from_file_location("compare_runs", TOOL)
compare_runs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_runs)


def make_run(root: Path, values, attr="a", page_text="0.123", extra_page=False) -> Path:
    (root / "model").mkdir(parents=True)
    (root / "model" / "layers.json").write_text(json.dumps({"layers": [{"name": "x"}]}))
    with h5py.File(root / "store.h5", "w") as f:
        f.attrs["settings_json"] = attr
        f.create_dataset("layers/x/values", data=np.asarray(values, dtype=np.float32))
        f.create_dataset("names", data=np.array(["a", "b"], dtype=h5py.string_dtype()))
    (root / "site").mkdir()
    (root / "site" / "index.html").write_text(
        f"<html><body><h1>Atlas</h1><p>mean {page_text}</p><img alt='x' src='a.png'>"
        '<script>var d = {"k": 1};</script></body></html>'
    )
    if extra_page:
        (root / "site" / "more.html").write_text("<p>more</p>")
    (root / "logs").mkdir()
    (root / "logs" / "job.log").write_text(str(root))  # differs between runs, never compared
    return root


def test_identical_runs_compare_clean(tmp_path, capsys):
    a = make_run(tmp_path / "a", [1.0, np.nan, 3.0])
    b = make_run(tmp_path / "b", [1.0, np.nan, 3.0])
    out = compare_runs.compare_runs(a, b)
    assert out["datasets"] == [] and out["attributes"] == [] and out["pages"] == []
    assert out["dataset_count"] == 2 and out["page_count"] == 1
    assert compare_runs.main([str(a), str(b)]) == 0


def test_a_changed_value_attribute_and_page_are_each_reported(tmp_path):
    a = make_run(tmp_path / "a", [1.0, 2.0, 3.0], attr="a", page_text="0.123")
    b = make_run(tmp_path / "b", [1.0, 2.0, 3.5], attr="b", page_text="0.1230", extra_page=True)
    out = compare_runs.compare_runs(a, b)
    assert out["datasets"] == ["store.h5:/layers/x/values differs (float32(3,) vs float32(3,))"]
    assert out["attributes"] == [("store.h5:/", "settings_json", "a", "b")]
    assert out["pages"] == [("site/index.html", ["-mean 0.123", "+mean 0.1230"])]
    assert "site/more.html only after" in out["files"]
    assert compare_runs.main([str(a), str(b)]) == 1


def test_a_negative_zero_is_a_change_bit_for_bit(tmp_path):
    a = make_run(tmp_path / "a", [0.0])
    b = make_run(tmp_path / "b", [-0.0])
    assert compare_runs.compare_runs(a, b)["datasets"]


def test_nan_encodings_and_the_runs_folder_are_told_apart_from_real_changes(tmp_path):
    a = make_run(tmp_path / "clone-a" / "results" / "run", [1.0, np.nan])
    b = make_run(tmp_path / "clone-b" / "results" / "run", [1.0, -np.nan])
    for run in (a, b):
        with h5py.File(run / "store.h5", "a") as f:
            clone = run.parent.parent
            f.create_dataset("paths", data=np.array([f"{clone}/data/x.jpg"], dtype=h5py.string_dtype()))
    out = compare_runs.compare_runs(a, b)
    assert out["datasets"] == []
    assert out["nan_bits"] == ["store.h5:/layers/x/values differs (float32(2,) vs float32(2,))"]
    assert out["located"] == ["store.h5:/paths differs (object(1,) vs object(1,))"]
    assert compare_runs.main([str(a), str(b)]) == 0
