"""Image sources: listing, stable ids, labels, decoding to RGB and skipping bad files."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.images import dataset
from pipeline.images.dataset import (
    BadImage,
    ImageDataset,
    ImageRecord,
    collate,
    load_rgb,
    open_source,
    skipped_from_batch,
    to_model_input,
)
from tests.helpers.images import write_bad_files


def solid(path: Path, colour, size=(8, 6), mode="RGB", fmt=None) -> Path:
    """A one-colour image file (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path, fmt)
    return path


def pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image).astype(int)


# ---------------------------------------------------------------------------------
# Bad files next to good ones
# ---------------------------------------------------------------------------------


def test_bad_files_are_skipped_with_their_reason_and_good_ones_load(tmp_path, caplog):
    root = tmp_path / "mixed"
    solid(root / "red.png", (255, 0, 0))
    solid(root / "sub" / "green.jpg", (0, 255, 0))
    solid(root / "blue.BMP", (0, 0, 255))
    expected_bad = write_bad_files(root / "bad")
    (root / "README.txt").write_text("not listed: wrong extension")

    source = open_source("folder", str(root))
    ids = [r.image_id for r in source.records]
    assert "README.txt" not in ids
    assert set(ids) == {"red.png", "sub/green.jpg", "blue.BMP"} | {f"bad/{n}" for n in expected_bad}

    data = ImageDataset(source.records, size=4)
    data = pickle.loads(pickle.dumps(data))  # DataLoader workers receive a pickled copy
    loader = torch.utils.data.DataLoader(data, batch_size=4, collate_fn=collate)
    skipped, good = [], {}
    with caplog.at_level(logging.WARNING, logger="pipeline.images.dataset"):
        for batch in loader:
            skipped += skipped_from_batch(source.records, batch)
            for index, ok, image in zip(batch["index"].tolist(), batch["ok"], batch["image"]):
                if ok:
                    good[source.records[index].image_id] = image
                else:
                    assert torch.equal(image, torch.zeros(3, 4, 4))

    reasons = {s.image_id: s.reason for s in skipped}
    assert set(reasons) == {f"bad/{n}" for n in expected_bad}
    for name, start in expected_bad.items():
        assert reasons[f"bad/{name}"].startswith(start), (name, reasons[f"bad/{name}"])
        assert any(f"bad/{name}" in m and start in m for m in caplog.messages), name
    assert all(s.path == str(root / s.image_id) for s in skipped)
    expected_colour = {"red.png": (1, 0, 0), "sub/green.jpg": (0, 1, 0), "blue.BMP": (0, 0, 1)}
    for image_id, colour in expected_colour.items():
        want = torch.tensor(colour, dtype=torch.float32).view(3, 1, 1).expand(3, 4, 4)
        assert torch.allclose(good[image_id], want, atol=2 / 255), image_id  # JPEG: near


def test_missing_and_folder_paths_are_bad_images(tmp_path):
    with pytest.raises(BadImage, match="file not found"):
        load_rgb(str(tmp_path / "gone.jpg"))
    with pytest.raises(BadImage, match="is a folder"):
        load_rgb(str(tmp_path))


def test_max_pixels_is_checked_before_decoding(tmp_path):
    path = solid(tmp_path / "a.png", (1, 2, 3), size=(20, 20))
    with pytest.raises(BadImage) as info:
        load_rgb(str(path), max_pixels=100)
    assert info.value.reason == "decompression bomb: 400 pixels > limit 100"
    assert load_rgb(str(path), max_pixels=400).size == (20, 20)


# ---------------------------------------------------------------------------------
# Conversions to RGB
# ---------------------------------------------------------------------------------


def test_exif_orientation_is_applied(tmp_path):
    # Stored 16 wide x 8 tall: left half red, right half blue. Orientation 6 means
    # "rotate 90 degrees clockwise to display": the left edge becomes the top.
    stored = np.zeros((8, 16, 3), np.uint8)
    stored[:, :8, 0] = 255
    stored[:, 8:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    image = load_rgb(str(tmp_path / "rotated.jpg"))
    assert image.size == (8, 16)
    px = pixels(image)
    assert np.abs(px[2:6, 2:6] - [255, 0, 0]).max() < 30  # top: red
    assert np.abs(px[10:14, 2:6] - [0, 0, 255]).max() < 30  # bottom: blue


def test_grayscale_becomes_grey_rgb(tmp_path):
    image = load_rgb(str(solid(tmp_path / "g.png", 100, mode="L")))
    assert (pixels(image) == [100, 100, 100]).all()


def test_palette_colours_are_looked_up(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.putpixel((1, 0), 1)
    image.save(tmp_path / "p.gif")
    assert pixels(load_rgb(str(tmp_path / "p.gif"))).tolist() == [[[10, 20, 30], [200, 100, 50]]]


def test_palette_transparency_is_composited_on_white(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.putpixel((1, 0), 1)
    image.save(tmp_path / "t.png", transparency=0)  # index 0 is transparent
    assert pixels(load_rgb(str(tmp_path / "t.png"))).tolist() == [[[255, 255, 255], [200, 100, 50]]]


@pytest.mark.parametrize("fmt, tolerance", [("TIFF", 0), ("JPEG", 6)])
def test_cmyk_is_converted(tmp_path, fmt, tolerance):
    image = Image.new("CMYK", (24, 8))
    for x0, ink in ((0, (0, 0, 0, 0)), (8, (255, 0, 0, 0)), (16, (0, 0, 0, 255))):
        image.paste(ink, (x0, 0, x0 + 8, 8))
    path = tmp_path / f"cmyk.{fmt.lower()}"
    image.save(path, fmt, **({"quality": 98} if fmt == "JPEG" else {}))
    px = pixels(load_rgb(str(path)))
    for x, rgb in ((4, (255, 255, 255)), (12, (0, 255, 255)), (20, (0, 0, 0))):  # white, cyan, black
        assert np.abs(px[4, x] - rgb).max() <= tolerance, (x, px[4, x])


def test_rgba_is_composited_on_white(tmp_path):
    image = Image.new("RGBA", (3, 1))
    image.putpixel((0, 0), (255, 0, 0, 0))  # invisible red: white
    image.putpixel((1, 0), (0, 0, 255, 255))  # opaque blue: blue
    image.putpixel((2, 0), (0, 0, 0, 128))  # half-transparent black: mid grey
    image.save(tmp_path / "a.png")
    px = pixels(load_rgb(str(tmp_path / "a.png")))
    assert px[0, 0].tolist() == [255, 255, 255]
    assert px[0, 1].tolist() == [0, 0, 255]
    assert np.abs(px[0, 2] - 127).max() <= 1


def test_grey_with_alpha_is_composited_on_white(tmp_path):
    image = Image.new("LA", (2, 1))
    image.putpixel((0, 0), (0, 0))
    image.putpixel((1, 0), (40, 255))
    image.save(tmp_path / "la.png")
    assert pixels(load_rgb(str(tmp_path / "la.png"))).tolist() == [[[255] * 3, [40] * 3]]


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "PPM"])  # Pillow opens these as I;16, I;16, I
def test_16_bit_grey_is_scaled_not_clipped(tmp_path, fmt):
    values = np.array([[0, 257 * 10, 257 * 100, 65535]], np.uint16)  # a dark 10 stays dark
    path = tmp_path / f"deep.{'pgm' if fmt == 'PPM' else fmt.lower()}"
    Image.fromarray(values).save(path, fmt)
    assert Image.open(path).mode in ("I;16", "I")
    px = pixels(load_rgb(str(path)))
    assert px[0, :, 0].tolist() == [0, 10, 100, 255]
    assert (px == px[..., :1]).all()  # grey


# ---------------------------------------------------------------------------------
# Model input
# ---------------------------------------------------------------------------------


def test_model_input_is_the_centre_square_scaled():
    # 60 x 20: three 20 x 20 squares, red | green | blue. The crop is the green one.
    stripes = np.zeros((20, 60, 3), np.uint8)
    stripes[:, :20, 0] = stripes[:, 20:40, 1] = stripes[:, 40:, 2] = 255
    x = to_model_input(Image.fromarray(stripes), 10)
    assert x.shape == (3, 10, 10) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1
    green = torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1)
    # bicubic: only the outermost columns feel the neighbouring squares
    assert torch.allclose(x[:, :, 1:9], green.expand(3, 10, 8), atol=1e-6)
    assert x[1, :, 0].min() > 0.9 and x[1, :, 9].min() > 0.9
    tall = to_model_input(Image.fromarray(stripes.transpose(1, 0, 2).copy()), 10)
    assert torch.allclose(tall[:, 1:9, :], green.expand(3, 8, 10), atol=1e-6)


def test_collate_shapes():
    batch = collate(
        [
            {"index": 3, "image": torch.ones(3, 2, 2), "ok": True, "reason": ""},
            {"index": 4, "image": torch.zeros(3, 2, 2), "ok": False, "reason": "x"},
        ]
    )
    assert batch["index"].tolist() == [3, 4] and batch["index"].dtype == torch.long
    assert batch["image"].shape == (2, 3, 2, 2)
    assert batch["ok"].tolist() == [True, False] and batch["ok"].dtype == torch.bool
    assert batch["reason"] == ["", "x"]


# ---------------------------------------------------------------------------------
# Listing: ids, labels, manifests, errors
# ---------------------------------------------------------------------------------


def test_bundled_photos():
    source = open_source()
    assert source.name == "bundled" and source.kind == "bundled" and source.labels == []
    ids = [r.image_id for r in source.records]
    on_disk = sorted(p.name for p in dataset.BUNDLED_DIR.iterdir() if p.suffix == ".jpg")
    assert ids == on_disk and "ATTRIBUTION.md" not in ids  # every photo, sorted; no text file
    assert set(dataset.FEATURED_PHOTOS) < set(ids) and len(ids) > 100
    assert all(os.path.isabs(r.path) and os.path.isfile(r.path) for r in source.records)
    assert load_rgb(source[3].path).mode == "RGB"


def test_every_bundled_photo_has_its_source_and_licence_in_the_attribution():
    attribution = (dataset.BUNDLED_DIR / "ATTRIBUTION.md").read_text(encoding="utf-8")
    rows = {
        cells[1]: cells[-2]
        for line in attribution.splitlines()
        if line.startswith("| ") and (cells := [c.strip() for c in line.split("|")])[1].endswith(".jpg")
    }
    assert sorted(rows) == [r.image_id for r in open_source().records]
    kept = {"CC BY 2.0", "CC BY-SA 2.0", "No known copyright restrictions", "US Government Work"}
    assert all(licence in kept for name, licence in rows.items() if name.startswith("coco-"))


def test_missing_bundled_photos_give_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset, "BUNDLED_DIR", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="bundled photos are missing.*nowhere"):
        open_source("bundled")


def test_ids_are_stable_and_independent_of_listing_order(tmp_path, monkeypatch):
    for name in ("b/2.png", "a.png", "b/10.png", "c/x/y.jpg", "B.png"):
        solid(tmp_path / name, (0, 0, 0))
    first = open_source("folder", str(tmp_path))
    real_walk = os.walk

    def reversed_walk(top, *args, **kwargs):  # the file system may list in any order
        for folder, dirs, files in real_walk(top, *args, **kwargs):
            dirs.reverse()
            yield folder, dirs, files[::-1]

    monkeypatch.setattr(dataset.os, "walk", reversed_walk)
    second = open_source("folder", str(tmp_path))
    assert first.records == second.records
    assert [r.image_id for r in first.records] == ["B.png", "a.png", "b/10.png", "b/2.png", "c/x/y.jpg"]


def test_hidden_files_and_folders_are_not_listed(tmp_path):
    solid(tmp_path / "keep.png", (0, 0, 0))
    solid(tmp_path / "._keep.png", (0, 0, 0))
    solid(tmp_path / ".ipynb_checkpoints" / "copy.png", (0, 0, 0))
    assert [r.image_id for r in open_source("folder", str(tmp_path)).records] == ["keep.png"]


def test_imagefolder_labels_from_subfolders(tmp_path, caplog):
    solid(tmp_path / "dog" / "b.png", (0, 0, 0))
    solid(tmp_path / "cat" / "a.jpg", (0, 0, 0))
    solid(tmp_path / "cat" / "more" / "c.png", (0, 0, 0))
    solid(tmp_path / "loose.png", (0, 0, 0))
    with caplog.at_level(logging.WARNING, logger="pipeline.images.dataset"):
        source = open_source("imagefolder", str(tmp_path))
    assert [(r.image_id, r.label) for r in source.records] == [
        ("cat/a.jpg", "cat"),
        ("cat/more/c.png", "cat"),
        ("dog/b.png", "dog"),
    ]
    assert source.labels == ["cat", "dog"]
    assert source.name == f"imagefolder:{tmp_path}" and source.root == str(tmp_path)
    assert any("1 image(s) directly in the root ignored" in m for m in caplog.messages)


def test_manifest_paths_are_relative_to_the_manifest_and_carry_labels(tmp_path, monkeypatch):
    solid(tmp_path / "data" / "img" / "one.png", (0, 0, 0))
    solid(tmp_path / "data" / "two.png", (0, 0, 0))
    outside = solid(tmp_path / "elsewhere" / "three.png", (0, 0, 0))
    manifest = tmp_path / "data" / "list.csv"
    manifest.write_text(
        f"path,label\n# a comment\nimg/one.png,cat\n\ntwo.png,\n{outside},dog\nmissing.png,cat\n"
    )
    monkeypatch.chdir(tmp_path / "elsewhere")  # relative to the manifest, not to the cwd
    source = open_source("manifest", "../data/list.csv")
    assert source.name == f"manifest:{manifest}" and source.root == str(tmp_path / "data")
    assert [(r.image_id, r.path, r.label) for r in source.records] == sorted(
        [
            ("img/one.png", str(tmp_path / "data" / "img" / "one.png"), "cat"),
            ("two.png", str(tmp_path / "data" / "two.png"), None),
            (str(outside), str(outside), "dog"),
            ("missing.png", str(tmp_path / "data" / "missing.png"), "cat"),
        ]
    )
    assert source.labels == ["cat", "dog"]
    # a row naming a missing file is listed, and skipped when decoded
    missing = next(i for i, r in enumerate(source.records) if r.image_id == "missing.png")
    item = ImageDataset(source.records, 4)[missing]
    assert not item["ok"] and item["reason"] == "file not found"


def test_tsv_manifest_without_header(tmp_path):
    solid(tmp_path / "a b.png", (0, 0, 0))
    solid(tmp_path / "c.png", (0, 0, 0))
    (tmp_path / "m.tsv").write_text("c.png\tzebra\na b.png\tant, big\n")
    source = open_source("manifest", str(tmp_path / "m.tsv"))
    assert [(r.image_id, r.label) for r in source.records] == [("a b.png", "ant, big"), ("c.png", "zebra")]


def test_manifest_without_labels(tmp_path):
    (tmp_path / "m.csv").write_text("x.png\ny.png\n")
    source = open_source("manifest", str(tmp_path / "m.csv"))
    assert [(r.image_id, r.label) for r in source.records] == [("x.png", None), ("y.png", None)]
    assert source.labels == []


def test_manifest_duplicates_are_an_error(tmp_path):
    (tmp_path / "m.csv").write_text("x.png,a\ny.png,b\nx.png,c\n")
    with pytest.raises(ValueError, match=r"'x.png' is listed twice \(lines 1 and 3\)"):
        open_source("manifest", str(tmp_path / "m.csv"))


def test_max_images_and_subset(tmp_path):
    for name in ("c/3.png", "a/1.png", "b/2.png"):
        solid(tmp_path / name, (0, 0, 0))
    source = open_source("imagefolder", str(tmp_path), max_images=2)
    assert [r.image_id for r in source.records] == ["a/1.png", "b/2.png"]
    assert source.labels == ["a", "b"]
    shard = source.subset(1, 2)
    assert (shard.name, shard.kind, shard.root, shard.labels) == (
        source.name,
        source.kind,
        source.root,
        ["a", "b"],
    )
    assert len(shard) == 1 and shard[0] == ImageRecord("b/2.png", str(tmp_path / "b" / "2.png"), "b")


@pytest.mark.parametrize(
    "kind, make, match",
    [
        ("folder", lambda p: p.mkdir(), "lists no images"),
        ("folder", lambda p: (p.mkdir(), (p / "a.txt").write_text("x")), "lists no images"),
        ("imagefolder", lambda p: solid(p / "loose.png", 0), r"lists no images \(expected root/<label>"),
        ("manifest", lambda p: p.write_text("path,label\n"), "lists no images"),
    ],
)
def test_empty_source_is_an_error_naming_it(tmp_path, kind, make, match):
    target = tmp_path / "src"
    make(target)
    with pytest.raises(ValueError, match=match) as info:
        open_source(kind, str(target))
    assert f"{kind}:{target}" in str(info.value)


@pytest.mark.parametrize("kind", ["folder", "imagefolder", "manifest"])
def test_missing_path_is_an_error_naming_it(tmp_path, kind):
    with pytest.raises(ValueError, match=f"{kind}:.*does not exist"):
        open_source(kind, str(tmp_path / "absent"))
    with pytest.raises(ValueError, match="needs a path"):
        open_source(kind, None)


def test_wrong_kind_of_path_or_source_is_an_error(tmp_path):
    solid(tmp_path / "a.png", 0)
    with pytest.raises(ValueError, match="is not a folder"):
        open_source("folder", str(tmp_path / "a.png"))
    with pytest.raises(ValueError, match="is not a file"):
        open_source("manifest", str(tmp_path))
    with pytest.raises(ValueError, match="unknown image source kind 'zip'"):
        open_source("zip", str(tmp_path))
    with pytest.raises(ValueError, match="takes no path"):
        open_source("bundled", str(tmp_path))


def test_the_images_table_is_a_dataset_by_row(tmp_path):
    """An extraction's images table (columns as the stores keep them; "" = no label) ->
    one record per row, item i the image of row i; a file that stopped decoding is an
    error naming the image and its path."""
    red = solid(tmp_path / "red.png", (255, 0, 0))
    gone = tmp_path / "gone.png"
    table = {"image_id": ["red.png", "gone.png"], "path": [str(red), str(gone)], "label": ["fruit", ""]}
    images = dataset.ImageDataset.from_table(table, 4)
    assert [(r.image_id, r.label) for r in images.records] == [("red.png", "fruit"), ("gone.png", None)]
    assert len(images) == 2
    red_image = images.decoded(0)
    assert red_image.shape == (3, 4, 4)
    assert torch.allclose(red_image[0], torch.ones(4, 4)) and float(red_image[1:].abs().max()) == 0.0
    with pytest.raises(ValueError, match=r"image 'gone.png' \(.*gone.png\) no longer decodes"):
        images.decoded(1)
    assert dataset.records_of_table({}) == []
