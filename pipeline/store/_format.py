"""Conventions shared by every model-atlas HDF5 file (see docs/STORE.md).

* The root group carries ``format`` (``"model-atlas.<kind>"``) and an integer
  ``format_version``. Readers accept only the versions they know.
* Files are written under a temporary name in the same folder and renamed into
  place only after the root attribute ``complete = True`` was written and the
  file closed. A crash leaves a ``.partial`` file, never a store that looks done.
* Provenance lives in root attributes: ``created_by``, ``config_hash``,
  ``model_checksum`` and ``package_versions`` (JSON).
* Variable-length text is stored as UTF-8 strings; JSON documents as string
  attributes whose names end in ``_json``.

Only the modules of :mod:`pipeline.store` import this; nothing else in the
package touches HDF5 paths.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Mapping

import h5py
import numpy as np

FORMAT_PREFIX = "model-atlas."
PARTIAL_SUFFIX = ".partial"
STR = h5py.string_dtype("utf-8")


class StoreError(ValueError):
    """A store file is missing, partial, of another kind or of an unknown version."""


def package_versions() -> dict[str, str]:
    versions = {}
    for name in ("model-atlas", "torch", "torchvision", "timm", "numpy", "h5py"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def config_hash(settings: Mapping[str, Any]) -> str:
    """A stable hash of the settings that determine a file's contents."""
    text = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}{PARTIAL_SUFFIX}")


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike, kind: str, version: int, *,
              settings: Mapping[str, Any] | None = None,
              model_checksum: str = "") -> Iterator[h5py.File]:
    """Write an HDF5 file so that it appears at ``path`` only when complete.

    ``settings`` (JSON-able) are stored as ``settings_json`` and hashed into
    ``config_hash``, which merges compare before combining shards.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    settings = dict(settings or {})
    try:
        with h5py.File(tmp, "w", track_order=True) as fh:
            fh.attrs["format"] = FORMAT_PREFIX + kind
            fh.attrs["format_version"] = int(version)
            fh.attrs["complete"] = False
            fh.attrs["created_by"] = "model-atlas " + package_versions().get("model-atlas", "?")
            fh.attrs["settings_json"] = json.dumps(settings, sort_keys=True, default=str)
            fh.attrs["config_hash"] = config_hash(settings)
            fh.attrs["model_checksum"] = model_checksum
            fh.attrs["package_versions_json"] = json.dumps(package_versions(), sort_keys=True)
            yield fh
            fh.attrs["complete"] = True
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def check_file(path: str | os.PathLike, kind: str, versions: tuple[int, ...]) -> Path:
    """Validate a store file without keeping it open; a :class:`StoreError` names what is wrong."""
    with open_h5(path, kind, versions):
        pass
    return Path(path)


@contextlib.contextmanager
def open_h5(path: str | os.PathLike, kind: str, versions: tuple[int, ...]) -> Iterator[h5py.File]:
    """Open a store read-only after checking its kind, version and completeness."""
    fh = open_h5_handle(path, kind, versions)
    try:
        yield fh
    finally:
        fh.close()


def open_h5_handle(path: str | os.PathLike, kind: str, versions: tuple[int, ...]) -> h5py.File:
    """Like :func:`open_h5` but returns the open file; the caller closes it."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: no such store file")
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise StoreError(f"{path}: not a readable HDF5 file ({exc})") from exc
    try:
        found = _attr_str(fh.attrs.get("format"))
        if found != FORMAT_PREFIX + kind:
            raise StoreError(f"{path}: expected a {FORMAT_PREFIX + kind} file, found {found or 'no format attribute'}")
        version = int(fh.attrs.get("format_version", -1))
        if version not in versions:
            raise StoreError(f"{path}: {found} version {version} is not supported by this "
                             f"model-atlas (supported: {', '.join(map(str, versions))}); "
                             "upgrade model-atlas or re-run the workflow")
        if not bool(fh.attrs.get("complete", False)):
            raise StoreError(f"{path}: the file is incomplete (its writer did not finish); re-run the workflow")
    except BaseException:
        fh.close()
        raise
    return fh


def settings_of(fh: h5py.File) -> dict:
    return json.loads(_attr_str(fh.attrs.get("settings_json")) or "{}")


def _attr_str(value) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def write_json_attr(obj: h5py.HLObject, name: str, value: Any) -> None:
    obj.attrs[f"{name}_json"] = json.dumps(value, sort_keys=True, default=str)


def read_json_attr(obj: h5py.HLObject, name: str, default: Any = None) -> Any:
    raw = obj.attrs.get(f"{name}_json")
    return default if raw is None else json.loads(_attr_str(raw))


def write_strings(group: h5py.Group, name: str, values) -> h5py.Dataset:
    return group.create_dataset(name, data=np.asarray(list(values), dtype=object), dtype=STR)


def read_strings(dataset: h5py.Dataset) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in dataset[()]]


def write_table(group: h5py.Group, name: str, columns: Mapping[str, Any]) -> h5py.Group:
    """A table as a group of equal-length column datasets (text columns as UTF-8)."""
    table = group.create_group(name, track_order=True)
    lengths = set()
    for col, values in columns.items():
        values = list(values) if not isinstance(values, np.ndarray) else values
        lengths.add(len(values))
        if isinstance(values, np.ndarray) and values.dtype.kind not in "OUS":
            table.create_dataset(col, data=values)
        elif len(values) and not isinstance(values[0], str):
            table.create_dataset(col, data=np.asarray(values))
        else:
            write_strings(table, col, values)
    if len(lengths) > 1:
        raise ValueError(f"table {name}: columns differ in length {sorted(lengths)}")
    table.attrs["encoding_type"] = "table"
    table.attrs["column_order"] = list(columns)
    return table


def read_table(table: h5py.Group) -> dict[str, list]:
    out = {}
    for col in table.attrs.get("column_order", list(table)):
        col = _attr_str(col)
        ds = table[col]
        out[col] = read_strings(ds) if ds.dtype.kind == "O" else ds[()].tolist()
    return out
