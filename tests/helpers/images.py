"""Image files made on the spot: deliberately broken ones, and a small labelled folder.

Each bad-file writer creates one file in ``folder`` and returns its name. ``BAD_FILES`` maps
those writers to the start of the skip reason :func:`pipeline.images.dataset.load_rgb` must give.
:func:`plant_images` writes an image folder source (class sub-folders) with a few bad files.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _noise_image(size: int = 32) -> Image.Image:
    rng = np.random.default_rng(0)  # noise compresses badly: the cut lands inside pixel data
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def zero_byte(folder: Path) -> str:
    (folder / "empty.jpg").write_bytes(b"")
    return "empty.jpg"


def text_named_png(folder: Path) -> str:
    (folder / "notes.png").write_text("this is not a picture\n")
    return "notes.png"


def random_bytes(folder: Path) -> str:
    (folder / "noise.jpg").write_bytes(np.random.default_rng(1).bytes(2048))
    return "noise.jpg"


def truncated_jpeg(folder: Path) -> str:
    data = _encoded(_noise_image(), "JPEG")
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    return "cut.jpg"


def truncated_png(folder: Path) -> str:
    data = _encoded(_noise_image(), "PNG")
    (folder / "cut.png").write_bytes(data[: len(data) // 2])
    return "cut.png"


def corrupt_png(folder: Path) -> str:
    """A whole PNG whose compressed pixel data was overwritten: the zlib stream breaks."""
    data = bytearray(_encoded(_noise_image(), "PNG"))
    start = data.find(b"IDAT") + 40
    data[start : start + 30] = bytes(b ^ 0xFF for b in data[start : start + 30])
    (folder / "garbled.png").write_bytes(bytes(data))
    return "garbled.png"


def bomb_png(folder: Path) -> str:
    """A 60-byte PNG whose header claims 20000 x 20000 pixels (over twice Pillow's limit)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 20000, 20000, 1, 0, 0, 0, 0)  # 1-bit grey
    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
    (folder / "bomb.png").write_bytes(data)
    return "bomb.png"


BAD_FILES = {
    zero_byte: "zero-byte file",
    text_named_png: "not an image",
    random_bytes: "not an image",
    truncated_jpeg: "truncated image",
    truncated_png: "truncated image",
    corrupt_png: "corrupt image",
    bomb_png: "decompression bomb",
}


def write_bad_files(folder: Path) -> dict[str, str]:
    """Every bad file in ``folder``: {file name: expected start of its skip reason}."""
    folder.mkdir(parents=True, exist_ok=True)
    return {writer(folder): reason for writer, reason in BAD_FILES.items()}


# A folder source for the end-to-end runs: class/file -> mean colour, and the bad files.
GOOD_IMAGES = {
    "cat/a.jpg": (200, 40, 40),
    "cat/b.png": (40, 200, 40),
    "dog/c.jpg": (40, 40, 200),
    "dog/d.jpg": (220, 220, 30),
    "dog/e.jpg": (30, 30, 30),
}
BAD_IMAGES = ("cat/empty.jpg", "dog/truncated.jpg", "cat/notes.jpg")


def plant_images(folder: Path) -> None:
    """``GOOD_IMAGES`` as noisy 48x40 pictures, then the ``BAD_IMAGES`` (empty, cut, text)."""
    rng = np.random.default_rng(0)
    for name, colour in GOOD_IMAGES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        pixels = np.clip(rng.normal(colour, 30, size=(40, 48, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / name)
    (folder / "cat/empty.jpg").write_bytes(b"")
    (folder / "dog/truncated.jpg").write_bytes((folder / "dog/c.jpg").read_bytes()[:200])
    (folder / "cat/notes.jpg").write_text("this is not a picture\n")
