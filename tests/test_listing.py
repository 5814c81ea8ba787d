"""Image listings (pipeline.images.listing): the JSON files that name a run's images."""

import json

import pytest

from pipeline.images import DatasetSettings, ImageRecord, read_listing, run_list_images, write_listing
from pipeline.images.dataset import BUNDLED_DIR, open_source


def test_a_listing_reads_back_its_records_in_order_and_its_source(tmp_path):
    records = [ImageRecord("b/2.jpg", "/data/b/2.jpg", "dog"), ImageRecord("a.png", "/data/a.png", None)]
    source = {"name": "folder:/data", "kind": "folder", "path": "/data", "max_images": None}
    write_listing(tmp_path / "images.json", records, source)
    listing = read_listing(tmp_path / "images.json")
    assert listing.records == records and len(listing) == 2  # the order jobs index
    assert listing.source == source
    document = json.loads((tmp_path / "images.json").read_text())
    assert document["format"] == "model-atlas.image-listing" and document["format_version"] == 1
    assert document["records"][1] == {"image_id": "a.png", "path": "/data/a.png", "label": None}


def test_listings_of_version_0_are_still_read(tmp_path):
    # Written before the format had a name: a run folder of that time resumes as it is.
    dataset = tmp_path / "dataset.json"
    dataset.write_text(
        json.dumps(
            {
                "source": "folder:/data",
                "kind": "folder",
                "path": "/data",
                "max_images": 2,
                "labels": ["dog"],
                "records": [{"image_id": "a.jpg", "path": "/data/a.jpg", "label": "dog"}],
            }
        )
    )
    listing = read_listing(dataset)
    assert listing.records == [ImageRecord("a.jpg", "/data/a.jpg", "dog")]
    assert listing.source == {"name": "folder:/data", "kind": "folder", "path": "/data", "max_images": 2}
    featured = tmp_path / "featured.json"
    featured.write_text(json.dumps({"records": [{"image_id": "b.png", "path": "/x/b.png"}]}))
    assert read_listing(featured).records == [ImageRecord("b.png", "/x/b.png", None)]


def test_what_is_not_a_listing_is_refused_naming_the_file(tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"layers": []}))
    with pytest.raises(ValueError, match="other.json: not an image listing"):
        read_listing(other)
    future = tmp_path / "future.json"
    future.write_text(
        json.dumps(
            {
                "format": "model-atlas.image-listing",
                "format_version": 9,
                "source": {"name": "x"},
                "records": [],
            }
        )
    )
    with pytest.raises(ValueError, match="future.json: image listing version 9"):
        read_listing(future)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ValueError, match="broken.json: not an image listing"):
        read_listing(broken)
    with pytest.raises(ValueError, match="needs a 'name'"):
        write_listing(tmp_path / "x.json", [], {"kind": "folder"})


def test_the_listing_job_lists_the_source_and_describes_it(tmp_path):
    run_list_images(DatasetSettings(max_images=3), tmp_path / "images.json")
    listing = read_listing(tmp_path / "images.json")
    assert listing.records == open_source("bundled").records[:3]
    assert all(r.path.startswith(str(BUNDLED_DIR)) for r in listing.records)
    assert listing.source == {"name": "bundled", "kind": "bundled", "path": None, "max_images": 3}
    with pytest.raises(ValueError, match="does not exist"):
        run_list_images(DatasetSettings(kind="folder", path=str(tmp_path / "nope")), tmp_path / "none.json")
    assert not (tmp_path / "none.json").exists()
