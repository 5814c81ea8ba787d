"""Conventions shared by every model-atlas HDF5 file (see docs/STORE.md).

* The root group carries ``format`` (``"model-atlas.<kind>"``) and an integer
  ``format_version``. Readers accept only the versions they know.
* Files are written under a temporary name in the same folder and renamed into
  place only after the root attribute ``complete = True`` was written and the
  file closed. A crash leaves a ``.partial`` file, never a store that looks done.
* Provenance lives in root attributes: ``created_by``, ``settings_json`` (the one
  record :func:`pipeline.store.provenance` builds), ``config_hash`` (its
  hash), ``model_checksum`` and ``package_versions`` (JSON).
* Variable-length text is stored as UTF-8 strings; JSON documents as string
  attributes whose names end in ``_json``.

Only the modules of :mod:`pipeline.store` import this; nothing else in the
package touches HDF5 paths.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import glob
import hashlib
import json
import math
import os
import re
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pipeline.store._provenance import ProvenanceRecord, read_provenance, recorded

FORMAT_PREFIX = "model-atlas."
PARTIAL_SUFFIX = ".partial"
STR = h5py.string_dtype("utf-8")


class StoreError(ValueError):
    """A store file is missing, partial, of another kind or of an unknown version."""


def package_versions() -> dict[str, str]:
    from importlib import metadata  # here: 20 ms that a reader (the query CLI) need not pay

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
def atomic_h5(
    path: str | os.PathLike,
    kind: str,
    version: int,
    *,
    settings: ProvenanceRecord | None = None,
    model_checksum: str = "",
) -> Iterator[h5py.File]:
    """Write an HDF5 file so that it appears at ``path`` only when complete.

    ``settings``: the file's provenance record (:func:`pipeline.store.provenance`;
    nothing else is accepted; None, for files of no stage, records an empty one), stored as
    ``settings_json`` and hashed into ``config_hash``,
    which merges compare before combining shards.
    """
    settings = read_provenance(None) if settings is None else settings
    if not isinstance(settings, ProvenanceRecord):
        raise TypeError(
            f"{path}: a store records its provenance as a record built by "
            f"pipeline.store.provenance(), not a {type(settings).__name__}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    _remove_stale_partials(path)
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
        _fsync(tmp)  # the bytes reach the disk before the name does (node crash, power loss)
        os.replace(tmp, path)
        _fsync(path.parent, folder=True)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _fsync(path: Path, folder: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        if not folder:
            raise
        # Some file systems cannot fsync a folder; the rename is atomic all the same.
    finally:
        os.close(fd)


def _remove_stale_partials(path: Path) -> None:
    """Delete temporary files that earlier, killed writers of ``path`` left behind.

    One writer per file (Snakemake runs one job per output and locks the run), so any
    other ``.<name>.<pid>.partial`` is garbage: without this, every crash of a large
    shard would leave gigabytes on disk.
    """
    prefix = f".{path.name}."
    for stale in path.parent.glob(f"{glob.escape(prefix)}*{PARTIAL_SUFFIX}"):
        if stale.name[len(prefix) : -len(PARTIAL_SUFFIX)].isdigit():  # the writer's pid
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


def incomplete_reason(path: str | os.PathLike) -> str | None:
    """Why the model-atlas store at ``path`` is not whole, or None if it is.

    Whole means: HDF5 opens it (a file cut short fails here), its ``complete``
    attribute is true and every file its virtual datasets read from exists (a missing
    source would silently read as fill values). Files that are not model-atlas stores
    count as whole (not ours).
    """
    try:
        fh = _open_despite_locks(path)
    except OSError as exc:
        if _is_lock_error(exc):
            return None  # someone holds it open: no evidence of damage
        return f"HDF5 cannot read it ({exc})"
    with fh:
        if not _attr_str(fh.attrs.get("format")).startswith(FORMAT_PREFIX):
            return None
        if not bool(fh.attrs.get("complete", False)):
            return "its `complete` attribute is not set (the writer did not finish)"
        missing = _missing_virtual_sources(fh, Path(path).parent)
        if missing:
            return f"its virtual datasets read from missing files: {', '.join(missing)}"
    return None


def _missing_virtual_sources(fh: h5py.File, folder: Path) -> list[str]:
    sources = set()

    def collect(_name, obj):
        if isinstance(obj, h5py.Dataset) and obj.is_virtual:
            sources.update(m.file_name for m in obj.virtual_sources())

    fh.visititems(collect)
    # "." is the file itself; relative names are relative to the store's folder.
    return sorted(name for name in sources if name != "." and not (folder / name).is_file())


def _open_despite_locks(path) -> h5py.File:
    """Open read-only; a file another handle holds (HDF5 file locks) is opened without locking."""
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if not _is_lock_error(exc):
            raise
    return h5py.File(path, "r", locking=False)


def _is_lock_error(exc: OSError) -> bool:
    # "unable to lock file", "file locking flag values don't match"; not "sblock->base_addr".
    return re.search(r"\block(ing)?\b", str(exc), re.IGNORECASE) is not None


def set_aside_incomplete_stores(
    folder: str | os.PathLike, *, dry_run: bool = False
) -> list[tuple[Path, str]]:
    """Rename every incomplete ``*.h5`` store below ``folder`` to ``<name>.incomplete``.

    Atomic writes mean a crash never leaves an incomplete file at its final name, but
    a copy cut short or a disk fault can. Run before the workflow plans its jobs, this
    makes the job that wrote such a file run again instead of a merge reading it; a
    merged store whose virtual datasets read from a file set aside goes too, so that
    the merge runs again. Returns (path, reason) for each such file; with ``dry_run``
    only reports them.
    """
    found: list[tuple[Path, str]] = []
    remaining = sorted(Path(folder).rglob("*.h5"))
    while True:  # until no file is set aside: each one can break the stores reading it
        newly = [(path, reason) for path in remaining if (reason := incomplete_reason(path)) is not None]
        if not newly or dry_run:
            return found + newly
        for path, _ in newly:
            os.replace(path, path.with_name(path.name + ".incomplete"))
        found += newly
        remaining = [path for path in remaining if path.exists()]


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


def open_h5_handle(
    path: str | os.PathLike, kind: str | tuple[str, ...], versions: tuple[int, ...]
) -> h5py.File:
    """Like :func:`open_h5` but returns the open file; the caller closes it.

    ``kind`` may be a tuple: any of those kinds is accepted.
    """
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: no such store file")
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise StoreError(f"{path}: not a readable HDF5 file ({exc})") from exc
    try:
        found = _attr_str(fh.attrs.get("format"))
        kinds = [FORMAT_PREFIX + k for k in ((kind,) if isinstance(kind, str) else kind)]
        if found not in kinds:
            raise StoreError(
                f"{path}: expected a {' or '.join(kinds)} file, found {found or 'no format attribute'}"
            )
        version = int(fh.attrs.get("format_version", -1))
        if version not in versions:
            advice = (
                "it was written by an older model-atlas: re-run the workflow to rewrite it"
                if version < min(versions)
                else "upgrade model-atlas or re-run the workflow"
            )
            raise StoreError(
                f"{path}: {found} version {version} is not supported by this "
                f"model-atlas (supported: {', '.join(map(str, versions))}); {advice}"
            )
        if not bool(fh.attrs.get("complete", False)):
            raise StoreError(
                f"{path}: the file is incomplete (its writer did not finish); re-run the workflow"
            )
    except BaseException:
        fh.close()
        raise
    return fh


class StoreReader:
    """Base of the lazy readers: they hold the open file ``fh`` until closed.

    Use a reader in a ``with`` block, or call :meth:`close`.
    """

    fh: h5py.File

    def close(self) -> None:
        self.fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def refuse_other_provenance(path, attrs: Mapping[str, Any], first_path, first: Mapping[str, Any]) -> None:
    """A shard being merged must share the first one's settings and model weights.

    ``attrs`` and ``first``: the files' root attributes (or dicts with ``config_hash`` and
    ``model_checksum``). Raises :class:`StoreError` naming both files otherwise.
    """
    if str(attrs["config_hash"]) != str(first["config_hash"]):
        raise StoreError(
            f"{path} was made with other settings than {first_path}: config_hash "
            f"{attrs['config_hash']} differs from {first['config_hash']}; delete "
            "the stale files and re-run"
        )
    if str(attrs.get("model_checksum", "")) != str(first.get("model_checksum", "")):
        raise StoreError(
            f"{path} comes from other model weights than {first_path}; delete the stale files and re-run"
        )


def settings_of(fh: h5py.File) -> dict:
    """The recorded settings, flat: the record's ``settings`` and ``derived`` (see
    :func:`pipeline.store._provenance.recorded`)."""
    return recorded(json.loads(_attr_str(fh.attrs.get("settings_json")) or "{}"))


def provenance_of(fh: h5py.File) -> ProvenanceRecord:
    """The whole provenance record of an open store (empty for a store written before records)."""
    return read_provenance(_attr_str(fh.attrs.get("settings_json")))


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


def finite_number(value) -> float | None:
    """A stored number as a Python float, or None for NaN and infinities (missing values).

    Pages keep this exact value and round only when they print it; JSON rounds with
    :func:`json_number`.
    """
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def json_number(value) -> float | None:
    """A stored number as queries show it: :func:`finite_number` rounded to 6 significant digits.

    float32, the stores' type, holds about 7 significant digits; 6 keeps every digit that
    means something and drops the binary noise (``0.1f`` is 0.10000000149011612 as a double).
    The one rounding rule of model-atlas's JSON: use it, not ``round``/``float``.
    """
    value = finite_number(value)
    return None if value is None else float(f"{value:.6g}")


def read_table(table: h5py.Group) -> dict[str, list]:
    out = {}
    for col in table.attrs.get("column_order", list(table)):
        col = _attr_str(col)
        ds = table[col]
        out[col] = read_strings(ds) if ds.dtype.kind == "O" else ds[()].tolist()
    return out


def write_record(group: h5py.Group, record) -> None:
    """A record's fields as datasets, nested records and dicts of them as subgroups."""
    for field in dataclasses.fields(record):
        value = getattr(record, field.name)
        if value is None:
            continue
        if dataclasses.is_dataclass(value):
            write_record(group.create_group(field.name), value)
        elif isinstance(value, dict):
            sub = group.create_group(field.name, track_order=True)
            for key, item in value.items():
                write_record(sub.create_group(key), item)
        else:
            group.create_dataset(field.name, data=np.asarray(value))


def read_record(group: h5py.Group, cls):
    """The inverse of :func:`write_record`, guided by ``cls``'s type hints."""
    values = {}
    for name, how, inner in _record_plan(cls):
        try:
            node = group[name]
        except KeyError:
            continue  # an optional field that was None
        if how == "dict":
            values[name] = {k: read_record(g, inner) for k, g in node.items()}
        elif how == "record":
            values[name] = read_record(node, inner)
        else:
            values[name] = node[()]
    return cls(**values)


@functools.cache
def _record_plan(cls) -> tuple[tuple[str, str, type | None], ...]:
    """``(field, "dict" | "record" | "array", record type)`` per field of ``cls``, resolved
    once per class: the merge reads thousands of records, and resolving the type hints
    (string annotations) each time cost as much as reading the arrays."""
    hints = typing.get_type_hints(cls)
    plan = []
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if typing.get_origin(kind) is dict:
            plan.append((field.name, "dict", args[1]))
        elif dataclasses.is_dataclass(kind) or (args and dataclasses.is_dataclass(args[0])):
            plan.append((field.name, "record", kind if dataclasses.is_dataclass(kind) else args[0]))
        else:
            plan.append((field.name, "array", None))
    return tuple(plan)
