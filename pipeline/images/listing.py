"""Image listings: the JSON files that name a run's images before any is decoded.

A listing job writes one (``results/<run>/dataset/images.json`` for extraction,
``results/<run>/blocks/images.json`` for the featured images); the workflow counts its
records to plan the shard jobs, and each job reads the records it works on. Format
(docs/STORE.md, "Image listings")::

    {"format": "model-atlas.image-listing", "format_version": 1,
     "source": {"name": "bundled", ...},           # how the images were listed
     "records": [{"image_id": "coffee.jpg", "path": "/abs/coffee.jpg", "label": null}, ...]}

Listings written before the format had a name (version 0: no ``format`` key; the
dataset's had ``source``, ``kind``, ``path`` and ``max_images`` at the top level) are
still read, so that a run folder made then resumes without listing again.

This module is the only one that reads or writes that file. No torch here (the
workflow reads listings to plan jobs).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

FORMAT, VERSION = "model-atlas.image-listing", 1
VERSIONS = (0, 1)


@dataclasses.dataclass(frozen=True)
class ImageRecord:
    image_id: str  # stable: POSIX path relative to the source root (manifest: as written)
    path: str  # absolute path
    label: str | None  # ImageFolder sub-folder name or manifest label; None if unlabelled


@dataclasses.dataclass(frozen=True)
class ImageListing:
    """A listing read back: its records, in order, and the description of their source."""

    records: list[ImageRecord]
    source: dict[str, Any]  # JSON object; "name" names the source in messages

    def __len__(self) -> int:
        return len(self.records)


def write_listing(path: str | os.PathLike, records: Sequence[ImageRecord], source: Mapping[str, Any]) -> Path:
    """Write ``records`` (in the order jobs index them) and ``source`` (a JSON-able
    description with at least ``name``) to ``path``."""
    if "name" not in source:
        raise ValueError(f"image listing {path}: the source description needs a 'name'")
    document = {
        "format": FORMAT,
        "format_version": VERSION,
        "source": dict(source),
        "records": [{"image_id": r.image_id, "path": str(r.path), "label": r.label} for r in records],
    }
    path = Path(path)
    path.write_text(json.dumps(document, indent=1))
    return path


def read_listing(path: str | os.PathLike) -> ImageListing:
    """The listing at ``path``; a ValueError naming the file if it is not one we can read."""
    try:
        document = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not an image listing ({exc})") from None
    if isinstance(document, dict) and "format" not in document and "records" in document:
        document = _from_version_0(document)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{path}: not an image listing (no format {FORMAT!r}); re-run its listing job")
    if document.get("format_version") not in VERSIONS:
        raise ValueError(
            f"{path}: image listing version {document.get('format_version')!r}; "
            f"this model-atlas reads versions {', '.join(map(str, VERSIONS))}: "
            "re-run its listing job"
        )
    records = [ImageRecord(r["image_id"], r["path"], r.get("label")) for r in document["records"]]
    return ImageListing(records=records, source=dict(document["source"]))


def _from_version_0(document: dict) -> dict:
    """A version-0 listing as version 1: its top-level source keys become the description."""
    if "source" in document:  # the dataset listing
        source = {"name": document["source"], **{k: document.get(k) for k in ("kind", "path", "max_images")}}
    else:  # the featured images: records only
        source = {"name": "featured images"}
    return {"format": FORMAT, "format_version": 0, "source": source, "records": document["records"]}
