"""End to end: the activation atlas through the real workflow (sampling in the extraction,
the layout checkpoint, render jobs planned from it, the merge, the site's atlas page and the
query CLI) on a tiny model and planted images."""

import json
import re

import h5py
import numpy as np
import pytest
import yaml

from pipeline.store.atlas import AtlasStore
from tests.helpers.images import GOOD_IMAGES, plant_images
from tests.helpers.workflow import cli, extract_config, run_on_two_cores

ATLAS = {
    "layers": ["late"],
    "positions_per_image": 4,
    "levels": [2, 3],
    "min_count": 1,
    "n_neighbors": 4,
    "cells_per_job": 2,
    "steps": 3,
    "image_size": 16,
}


@pytest.mark.slow
def test_the_workflow_builds_the_atlas_its_page_and_its_query(tmp_path):
    images = tmp_path / "images"
    plant_images(images)
    config = {**extract_config(images), "atlas": ATLAS, "site": {"enabled": True}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run_on_two_cores(tmp_path, "results/e2e/site")
    run = tmp_path / "results" / "e2e"

    with AtlasStore(run / "atlas" / "late" / "layout.h5") as layout:
        counts = layout.cell_counts("late")
    assert list(counts) == [2, 3] and all(n >= 1 for n in counts.values())
    # One render job per two cells of each level, named by its range.
    expected = sorted(
        f"{level}/{start}-{min(start + 2, n)}.h5" for level, n in counts.items() for start in range(0, n, 2)
    )
    rendered = sorted(
        p.relative_to(run / "atlas" / "late" / "icons").as_posix()
        for p in run.glob("atlas/late/icons/*/*.h5")
    )
    assert rendered == expected
    with AtlasStore(run / "atlas.h5") as store:
        assert store.layers() == ["late"] and store.cell_counts("late") == counts
        icons = store.icons("late", 3)[()]
        assert icons.shape == (counts[3], 16, 16, 3) and icons.std() > 0
        with h5py.File(run / "atlas" / "late" / "icons" / "3" / "0-2.h5", "r") as part:
            np.testing.assert_array_equal(part["icons"][()], icons[:2])
        samples = len(store.samples("late"))
    assert samples == 4 * len(GOOD_IMAGES)  # four positions of each image that decodes

    page = (run / "site" / "atlas" / "late.html").read_text()
    data = json.loads(re.search(r'id="atlas-data">(.*?)</script>', page, re.S).group(1))
    assert [len(level["cells"]) for level in data["levels"]] == [counts[2], counts[3]]
    assert all((run / "site" / "atlas" / cell["icon"]).is_file() for cell in data["levels"][1]["cells"])
    assert 'href="atlas/late.html"' in (run / "site" / "index.html").read_text()

    found = cli("query", str(run), "atlas", "late", "--json")
    assert found.returncode == 0, found.stderr
    described = json.loads(found.stdout)
    assert [len(level["cells"]) for level in described["levels"]] == [counts[2], counts[3]]
