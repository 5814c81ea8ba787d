"""Image sources: listing images, decoding them to RGB and skipping bad files.

A source is listed first (:func:`open_source`: file names only, cheap) and decoded
later, batch by batch, in DataLoader workers (:class:`ImageDataset`). Kinds:

``bundled``      the photos in ``data/photos`` (the embedded default dataset: eight from
                 packages' sample data and 137 from COCO, data/photos/ATTRIBUTION.md)
``folder``       every image file below a folder, recursively
``imagefolder``  ``root/<label>/**/image``: the label is the first sub-folder's name
``manifest``     a CSV/TSV file of ``path[,label]`` rows; relative paths are relative
                 to the manifest's folder

An image's id is its POSIX path relative to the source root (for a manifest: the
path as written). Records are sorted by id, so ids and order do not depend on the
order in which the file system lists a folder.

Bad files (zero bytes, truncated, not an image, decompression bombs, unreadable)
never stop a run: decoding reports them as ``ok=False`` with a short reason, and
:func:`skipped_from_batch` turns them into :class:`SkippedImage` rows (logged as
warnings) for the store's skipped-images table.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.images.listing import ImageRecord

log = logging.getLogger("pipeline.images.dataset")

BUNDLED_DIR = Path(__file__).resolve().parents[2] / "data" / "photos"
# The bundled photos that ``blocks.images: bundled`` features (an image page each): the eight
# from packages' sample data, not the whole set, whose every page would cost a minute or more.
FEATURED_PHOTOS = (
    "astronaut.jpg",
    "chelsea.jpg",
    "china.jpg",
    "coffee.jpg",
    "flower.jpg",
    "grace_hopper.jpg",
    "motorcycle.jpg",
    "rocket.jpg",
)
KINDS = ("bundled", "folder", "imagefolder", "manifest")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own default Image.MAX_IMAGE_PIXELS


@dataclasses.dataclass(frozen=True)
class SkippedImage:
    image_id: str
    path: str
    reason: str  # short and human, e.g. "zero-byte file", "truncated image: ..."


@dataclasses.dataclass
class ImageSource:
    """A listed (not yet decoded) image source; records sorted by ``image_id``."""

    name: str  # "bundled", "folder:/abs/path", ...: for messages and the store
    kind: str  # one of KINDS
    root: str  # absolute folder that ids are relative to (manifest: its folder)
    records: list[ImageRecord]
    labels: list[str]  # sorted distinct labels; [] if unlabelled

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> ImageRecord:
        return self.records[i]

    def subset(self, start: int, stop: int) -> ImageSource:
        """Records ``[start:stop]`` (a shard). ``labels`` stay those of the whole source,
        so that label indices agree between shards."""
        return dataclasses.replace(self, records=self.records[start:stop], labels=list(self.labels))


# ---------------------------------------------------------------------------------
# Listing
# ---------------------------------------------------------------------------------


def open_source(kind: str = "bundled", path: str | None = None, max_images: int | None = None) -> ImageSource:
    """List an image source without decoding anything.

    ``max_images`` keeps the first N records in id order. Raises ValueError naming
    the source when the path is missing or wrong, or when it lists no image at all.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown image source kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind == "bundled":
        if path is not None:
            raise ValueError(
                f"image source kind 'bundled' takes no path (got {path!r}); "
                "use kind 'folder' for your own images"
            )
        if not BUNDLED_DIR.is_dir():
            raise ValueError(
                f"the bundled photos are missing: expected them in {BUNDLED_DIR}. They "
                "ship with the source checkout (data/photos), not with a wheel; use "
                "dataset kind 'folder' with a path to your own images"
            )
        name, root, records = "bundled", str(BUNDLED_DIR), _list_folder(str(BUNDLED_DIR), False)
    else:
        if not path:
            raise ValueError(f"image source kind {kind!r} needs a path")
        target = os.path.abspath(os.path.expanduser(path))
        name = f"{kind}:{target}"
        if not os.path.exists(target):
            raise ValueError(f"image source {name}: path {path!r} does not exist")
        if kind == "manifest":
            if not os.path.isfile(target):
                raise ValueError(
                    f"image source {name}: {path!r} is not a file (a manifest is a "
                    "CSV/TSV file of path[,label] rows)"
                )
            root, records = os.path.dirname(target), _read_manifest(target)
        else:
            if not os.path.isdir(target):
                raise ValueError(f"image source {name}: {path!r} is not a folder")
            root, records = target, _list_folder(target, labelled=kind == "imagefolder")
    if not records:
        raise ValueError(f"image source {name} lists no images{_empty_hint(kind)}")
    records.sort(key=lambda r: r.image_id)
    if max_images is not None:
        if max_images < 1:
            raise ValueError(f"image source {name}: max_images must be >= 1, got {max_images}")
        records = records[:max_images]
    labels = sorted({r.label for r in records if r.label is not None})
    return ImageSource(name=name, kind=kind, root=root, records=records, labels=labels)


def _empty_hint(kind: str) -> str:
    extensions = " ".join(sorted(IMAGE_EXTENSIONS))
    if kind == "imagefolder":
        return f" (expected root/<label>/<image> with one of {extensions})"
    if kind == "manifest":
        return " (the manifest has no rows)"
    return f" (looked for files ending in {extensions}, case-insensitive)"


def _list_folder(root: str, labelled: bool) -> list[ImageRecord]:
    """Image files below ``root`` by extension. Hidden files and folders (names starting
    with ".", e.g. macOS "._x.jpg" forks, .ipynb_checkpoints) are left out; symlinked
    files are listed, symlinked folders are not entered (no cycles)."""
    records, loose = [], 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for file in files:
            if file.startswith(".") or os.path.splitext(file)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            full = os.path.join(folder, file)
            image_id = Path(os.path.relpath(full, root)).as_posix()
            label = None
            if labelled:
                if "/" not in image_id:
                    loose += 1  # an image beside the class folders has no label
                    continue
                label = image_id.split("/", 1)[0]
            records.append(ImageRecord(image_id, os.path.abspath(full), label))
    if loose:
        log.warning(
            "image folder %s: %d image(s) directly in the root ignored; "
            "an ImageFolder tree keeps images in root/<label>/",
            root,
            loose,
        )
    return records


def _read_manifest(manifest: str) -> list[ImageRecord]:
    """Rows of ``path[,label]``; TSV if the name ends in .tsv/.tab or the first line has a
    tab. An optional header row names the columns (``path``, optional ``label``, others
    ignored). Blank lines and lines starting with "#" are skipped."""
    base = os.path.dirname(manifest)
    with open(manifest, newline="", encoding="utf-8-sig") as fh:
        text = fh.read()
    first = text.split("\n", 1)[0]
    tsv = manifest.lower().endswith((".tsv", ".tab")) or "\t" in first
    rows = [
        (n, row)
        for n, row in enumerate(csv.reader(text.splitlines(), delimiter="\t" if tsv else ","), 1)
        if row and any(c.strip() for c in row) and not row[0].lstrip().startswith("#")
    ]
    path_col, label_col = 0, 1
    if rows and rows[0][1][0].strip().lower() == "path":
        header = [c.strip().lower() for c in rows.pop(0)[1]]
        label_col = header.index("label") if "label" in header else None
    records, seen = [], {}
    for line, row in rows:
        image_id = row[path_col].strip()
        if not image_id:
            raise ValueError(f"manifest {manifest}, line {line}: empty path")
        if image_id in seen:
            raise ValueError(
                f"manifest {manifest}: {image_id!r} is listed twice "
                f"(lines {seen[image_id]} and {line}); image ids must be unique"
            )
        seen[image_id] = line
        label = row[label_col].strip() if label_col is not None and label_col < len(row) else ""
        full = os.path.abspath(os.path.join(base, os.path.expanduser(image_id)))
        records.append(ImageRecord(image_id, full, label or None))
    return records


# ---------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------


class BadImage(Exception):
    """A file that cannot be used as an image; ``reason`` is short and human."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def load_rgb(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``path`` fully into an RGB image, upright according to its EXIF orientation.

    Raises :class:`BadImage` for a missing, zero-byte, non-image, truncated or corrupt
    file and for images of more than ``max_pixels`` pixels (checked from the header,
    before decoding). Pillow itself refuses images over twice its global
    ``Image.MAX_IMAGE_PIXELS`` whatever ``max_pixels`` says.
    """
    try:
        if os.path.getsize(path) == 0:
            raise BadImage("zero-byte file")
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS; our own limit below decides instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                pixels = image.width * image.height
                if pixels > max_pixels:
                    raise BadImage(f"decompression bomb: {pixels} pixels > limit {max_pixels}")
                image.load()  # decode everything now, so truncation shows up here
                return _to_rgb(_upright(image, path))
    except BadImage:
        raise
    except FileNotFoundError:
        raise BadImage("file not found") from None
    except IsADirectoryError:
        raise BadImage("is a folder, not a file") from None
    except PermissionError:
        raise BadImage("permission denied") from None
    except UnidentifiedImageError:
        raise BadImage("not an image: Pillow cannot identify the file") from None
    except Image.DecompressionBombError as exc:
        raise BadImage(f"decompression bomb: {exc}") from None
    except OSError as exc:
        if "truncated" in str(exc):
            raise BadImage(f"truncated image: {exc}") from None
        if exc.errno is not None:  # the operating system failed to read the file
            raise BadImage(f"unreadable file: {exc}") from None
        raise BadImage(f"corrupt image: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - corrupt data makes Pillow's decoders raise anything
        raise BadImage(f"corrupt image: {type(exc).__name__}: {exc}") from None


def _upright(image: Image.Image, path: str) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except Exception as exc:  # noqa: BLE001 - broken EXIF: the pixels are still fine
        log.warning("%s: EXIF orientation unreadable (%s); using the image as stored", path, exc)
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB for every Pillow mode we may meet.

    * 16-bit grey ("I;16*") and "I" (Pillow's mode for 16-bit PGM) are 0..65535 and are
      scaled by 255/65535; Pillow's own convert("L") would clip them at 255 instead.
      "F" (float) is taken to be in [0, 1].
    * Transparency (RGBA, LA, PA, palette/RGB with a transparent colour) is composited
      on white: pixels under alpha 0 hold arbitrary colour (often black), which a plain
      convert would expose.
    * CMYK, YCbCr, LAB, palette, 1-bit and 8-bit grey use Pillow's convert("RGB")
      (Pillow handles Adobe's inverted CMYK JPEGs; ICC profiles are not applied).
    """
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 if image.mode == "F" else 255.0 / 65535.0
        grey = np.clip(np.round(values * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if "A" in image.getbands() or "a" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def to_model_input(image: Image.Image, size: int) -> torch.Tensor:
    """``[3, size, size]`` float32 in [0, 1]: the shorter side resized to ``size``
    (bicubic; Pillow's resize filters over the whole footprint, i.e. antialiased), then
    centre-cropped. Done in one step by resizing the central square of the image.

    Every box or position stored for an image (dataset examples, attribution maps)
    refers to this ``size`` x ``size`` crop, not to the original file.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if image.mode != "RGB":
        image = _to_rgb(image)
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    square = image.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))
    pixels = torch.from_numpy(np.array(square, dtype=np.uint8))  # [size, size, 3]
    return pixels.permute(2, 0, 1).float().div_(255.0)


def to_uint8(images01: torch.Tensor) -> np.ndarray:
    """Float images in ``[0, 1]``, ``[N, 3, H, W]`` or ``[3, H, W]``, as uint8 ``[N, H, W, 3]``
    or ``[H, W, 3]``: what the stores keep and the site shows (the inverse of
    :func:`to_model_input`, up to rounding)."""
    pixels = (images01.detach().float().clamp(0, 1) * 255).round().byte()
    return pixels.movedim(-3, -1).cpu().numpy()


class ImageDataset(torch.utils.data.Dataset):
    """Decodes records for a DataLoader; picklable (holds only records and ints).

    A bad file gives a zero image with ``ok=False`` and its reason; the warning is
    logged by :func:`skipped_from_batch` in the main process (worker logs may be lost).
    """

    def __init__(self, records: Sequence[ImageRecord], size: int, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.records = list(records)
        self.size = int(size)
        self.max_pixels = int(max_pixels)

    @classmethod
    def from_table(cls, table: Mapping[str, Sequence], size: int) -> ImageDataset:
        """The images of an extraction's images table (columns ``image_id``, ``path``,
        ``label``, as the activations store and its shards keep them; an empty label is
        none): item ``i`` is the image of the table's row ``i``."""
        return cls(records_of_table(table), size)

    def __len__(self) -> int:
        return len(self.records)

    def decoded(self, i: int) -> torch.Tensor:
        """The image of record ``i`` ``[3, size, size]``, or a ValueError naming it if it
        no longer decodes (the extraction decoded it: the file changed since)."""
        item = self[i]
        if not item["ok"]:
            record = self.records[i]
            raise ValueError(
                f"image {record.image_id!r} ({record.path}) no longer decodes: "
                f"{item['reason']}; re-run the extraction"
            )
        return item["image"]

    def __getitem__(self, i: int) -> dict:
        """``{"index": i, "image": [3, size, size] (zeros if bad), "ok": bool, "reason": str}``."""
        try:
            image = to_model_input(load_rgb(self.records[i].path, self.max_pixels), self.size)
        except BadImage as bad:
            return {
                "index": i,
                "image": torch.zeros(3, self.size, self.size),
                "ok": False,
                "reason": bad.reason,
            }
        return {"index": i, "image": image, "ok": True, "reason": ""}


def records_of_table(table: Mapping[str, Sequence]) -> list[ImageRecord]:
    """One :class:`ImageRecord` per row of an extraction's images table (an empty label,
    as the table stores "no label", becomes None)."""
    return [
        ImageRecord(image_id, path, label or None)
        for image_id, path, label in zip(
            table.get("image_id", []), table.get("path", []), table.get("label", [])
        )
    ]


def collate(batch: list[dict]) -> dict:
    """``{"index": Long[B], "image": [B, 3, S, S], "ok": Bool[B], "reason": list[str]}``."""
    return {
        "index": torch.tensor([item["index"] for item in batch], dtype=torch.long),
        "image": torch.stack([item["image"] for item in batch]),
        "ok": torch.tensor([item["ok"] for item in batch], dtype=torch.bool),
        "reason": [item["reason"] for item in batch],
    }


def skipped_from_batch(records: Sequence[ImageRecord], batch: dict) -> list[SkippedImage]:
    """The bad images of a collated batch (``records`` indexed by ``batch["index"]``),
    each logged as a warning naming the file and the reason."""
    skipped = []
    for index, ok, reason in zip(batch["index"].tolist(), batch["ok"].tolist(), batch["reason"]):
        if ok:
            continue
        record = records[index]
        log.warning("skipping image %s (%s): %s", record.image_id, record.path, reason)
        skipped.append(SkippedImage(record.image_id, record.path, reason))
    return skipped
