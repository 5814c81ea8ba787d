"""The provenance record: one shape for what every store says made it (docs/STORE.md).

Every store's root attribute ``settings_json`` holds one record, built by
:func:`provenance` and nothing else (:func:`pipeline.store._format.atomic_h5` refuses
anything else); ``config_hash`` hashes the whole record, so two files compare equal
exactly when the same stage, model, settings and inputs made them::

    {"provenance": 1,                       # the record's own version
     "stage": "featurevis",                 # the stage (and job kind) that wrote the file
     "model": {"name": ..., "weights": ...},
     "settings": {...},                     # the stage settings the job's rule passes (its rerun keys)
     "derived": {...},                      # what the job resolved from them (layers, schedules, ...)
     "inputs": {...}}                       # the config hashes of the stores it read

``settings`` and ``derived`` never share a key, so :func:`recorded` can give readers one
flat view of both. No torch here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

PROVENANCE_VERSION = 1
FIELDS = ("provenance", "stage", "model", "settings", "derived", "inputs")


class ProvenanceRecord(dict):
    """A record built by :func:`provenance` (or read back by :func:`read_provenance`): the
    type the store writers require, so no store is written with a hand-made dict."""


def _plain(value: Any) -> Any:
    """JSON's view of ``value`` (tuples as lists), so a record read back equals the one written."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def provenance(
    *,
    stage: str,
    settings: Any,
    model: Mapping[str, Any],
    derived: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
) -> ProvenanceRecord:
    """The record a store of ``stage`` stores as its provenance.

    ``settings``: a :class:`~pipeline.settings.StageSettings` subset as a dict (or the
    object itself, taken whole); ``model``: a mapping with ``name`` and ``weights`` (a
    ModelSpec's ``to_dict()``, a loaded model's ``describe()``, or a record's ``model``);
    other keys of it (device, checksum, ...) are left out: the checksum is the root
    attribute ``model_checksum`` and the device does not decide a file's contents.
    """
    if not stage or not isinstance(stage, str):
        raise ValueError(f"provenance: stage must be a non-empty string, got {stage!r}")
    if hasattr(settings, "to_dict"):
        settings = settings.to_dict()
    if not isinstance(settings, Mapping):
        raise TypeError(f"provenance of {stage}: settings must be a mapping, got {type(settings).__name__}")
    missing = [key for key in ("name", "weights") if key not in model]
    if missing:
        raise ValueError(f"provenance of {stage}: the model mapping has no {', '.join(missing)}")
    derived = dict(derived or {})
    shared = sorted(set(settings) & set(derived))
    if shared:
        raise ValueError(f"provenance of {stage}: {', '.join(shared)} both in settings and derived")
    return ProvenanceRecord(
        _plain(
            {
                "provenance": PROVENANCE_VERSION,
                "stage": stage,
                "model": {"name": str(model["name"]), "weights": str(model["weights"])},
                "settings": dict(settings),
                "derived": derived,
                "inputs": dict(inputs or {}),
            }
        )
    )


def read_provenance(text: str | None) -> ProvenanceRecord:
    """The record stored as ``settings_json`` (empty for a store written before records)."""
    record = json.loads(text or "{}")
    return ProvenanceRecord(record) if record.get("provenance") == PROVENANCE_VERSION else ProvenanceRecord()


def recorded(record: Mapping[str, Any]) -> dict[str, Any]:
    """One flat view of a record's ``settings`` and ``derived`` (what readers look keys up in);
    a record of the shape before this one (a flat dict) is returned as it is."""
    if "provenance" not in record:
        return dict(record)
    return {**record.get("settings", {}), **record.get("derived", {})}
