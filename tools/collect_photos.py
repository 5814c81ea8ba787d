"""Write the COCO photos of data/photos and data/photos/ATTRIBUTION.md: the record of how the
demo's photo set was made. It is not run by the demo; nothing is downloaded at run time.

The sources are four public GitHub repositories that carry small subsets of COCO 2017
(train2017 or val2017 images) together with the subset's annotation JSON, read from git
snapshots of them (one git directory per repository, passed as ``--repo owner/name=GIT_DIR``)
at the commits pinned in SOURCES. COCO's annotation JSON gives every image's Flickr licence
(``images[*].license``, an id into the ``licenses`` table) and its Flickr address
(``flickr_url``); the photographer's name is not in it, so ATTRIBUTION.md records the Flickr
address, which identifies the photo and its author's page.

Only licences that allow redistribution and derivatives, commercial use included, are kept:
CC BY 2.0, CC BY-SA 2.0, "No known copyright restrictions" (Flickr Commons) and United States
Government Work. The NonCommercial and NoDerivs ones (ids 1, 2, 3, 6) are left out. Every
kept image's licence name and URL is checked against the table, so a subset whose ``licenses``
table differs from COCO's stops the script instead of mislabelling a photo.

Each photo is turned upright (EXIF), converted to RGB, shrunk so that its short side is at
most 256 px (Lanczos) and saved as JPEG quality 88: ``coco-<COCO image id>.jpg``. The caption
is the image's COCO categories, largest annotated area first.

    .venv/bin/python tools/collect_photos.py \\
        --repo Obmutescence/COCO-MINI=/path/to/COCO-MINI.git --repo ...

The output is deterministic (ordered by image id, no dates), so re-running it changes nothing.
The eight photos taken from Python packages' sample data (EIGHT_PACKAGE_PHOTOS) were added by
hand before; this script keeps them and their rows.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parent.parent
PHOTOS = REPO / "data" / "photos"
SHORT_SIDE = 256
JPEG_QUALITY = 88

# COCO's licence table (identical in every COCO 2017 annotation file): the ids kept and
# the name and URL each must carry.
KEPT_LICENCES = {
    4: ("Attribution License", "http://creativecommons.org/licenses/by/2.0/", "CC BY 2.0"),
    5: ("Attribution-ShareAlike License", "http://creativecommons.org/licenses/by-sa/2.0/", "CC BY-SA 2.0"),
    7: (
        "No known copyright restrictions",
        "http://flickr.com/commons/usage/",
        "No known copyright restrictions",
    ),
    8: ("United States Government Work", "http://www.usa.gov/copyright.shtml", "US Government Work"),
}

# (repository, commit, [(annotation JSON, folder of its images)])
SOURCES = [
    (
        "Obmutescence/COCO-MINI",
        "644f29e7c1d2eefd9c4412d39bc5b0ee6fd0afd4",
        [
            ("annotations/instances_train2017.json", "train2017"),
            ("annotations/instances_val2017.json", "val2017"),
        ],
    ),
    (
        "developer0hye/COCO128",
        "47a3de30aaf7ad1c02105bd80598fb03ac0d0789",
        [("annotations/instances_train2017.json", "train2017")],
    ),
    (
        "enginbozaba/tiny_coco",
        "44ee1df5a4f5c3fa6ab7c68d85a0d45590758584",
        [
            ("annotations/instances_train2017.json", "images/train2017"),
            ("annotations/instances_val2017.json", "images/val2017"),
        ],
    ),
    (
        "zzowenzz/COCO_Tiny",
        "e7a689f7d6d1a1908df287c3e79eccdadfdba1fe",
        [
            ("annotations/instances_train2017.json", "train2017"),
            ("annotations/instances_val2017.json", "val2017"),
        ],
    ),
]

EIGHT_PACKAGE_PHOTOS = """\
| file | source | licence |
|---|---|---|
| astronaut.jpg | scikit-image `data.astronaut` (NASA, Eileen Collins) | public domain |
| chelsea.jpg | scikit-image `data.chelsea` (Stefan van der Walt) | CC0 |
| coffee.jpg | scikit-image `data.coffee` (Rachel Michetti, Pikolo Espresso Bar) | CC0 |
| rocket.jpg | scikit-image `data.rocket` (SpaceX) | public domain |
| motorcycle.jpg | scikit-image `data.stereo_motorcycle`, left view (Middlebury 2014 stereo benchmark) \
| as distributed with scikit-image |
| china.jpg | scikit-learn `load_sample_image("china.jpg")` (danielbuechele, Flickr) | CC BY 2.0 |
| flower.jpg | scikit-learn `load_sample_image("flower.jpg")` (vultilion, Flickr) | CC BY 2.0 |
| grace_hopper.jpg | matplotlib sample data (US Navy) | public domain |
"""


def git_show(git_dir: Path, commit: str, path: str) -> bytes:
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", "show", f"{commit}:{path}"], check=True, capture_output=True
    ).stdout


def kept_images(annotations: dict, where: str) -> list[dict]:
    """The images of one COCO annotation file whose licence is kept, each with its
    categories (largest annotated area first). Raises ValueError when the file's licence
    table disagrees with COCO's for a kept id."""
    table = {entry["id"]: entry for entry in annotations.get("licenses") or []}
    names = {category["id"]: category["name"] for category in annotations.get("categories", [])}
    area = defaultdict(lambda: defaultdict(float))
    for annotation in annotations.get("annotations", []):
        area[annotation["image_id"]][names[annotation["category_id"]]] += annotation["area"]
    kept = []
    for image in annotations["images"]:
        licence = image.get("license")
        if licence not in KEPT_LICENCES:
            continue
        name, url, _ = KEPT_LICENCES[licence]
        entry = table.get(licence)
        if entry is not None and (entry["name"], entry["url"]) != (name, url):
            raise ValueError(f"{where}: licence {licence} is {entry!r}, COCO's is {name!r} ({url})")
        by_area = sorted(area[image["id"]].items(), key=lambda item: (-item[1], item[0]))
        kept.append({**image, "categories": [category for category, _ in by_area]})
    return kept


def shrink(data: bytes) -> bytes:
    """The photo upright, RGB, short side at most SHORT_SIDE, as JPEG."""
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    scale = SHORT_SIDE / min(image.size)
    if scale < 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()


def collect(git_dirs: dict[str, Path]) -> list[dict]:
    """Every kept image of SOURCES once (the first source that carries it), by image id."""
    photos: dict[int, dict] = {}
    for repository, commit, parts in SOURCES:
        if repository not in git_dirs:
            raise SystemExit(f"no git directory given for {repository} (--repo {repository}=PATH)")
        for annotation_path, folder in parts:
            where = f"{repository}@{commit[:7]}:{annotation_path}"
            annotations = json.loads(git_show(git_dirs[repository], commit, annotation_path))
            for image in kept_images(annotations, where):
                if image["id"] in photos:
                    known = photos[image["id"]]
                    if known["license"] != image["license"]:
                        raise ValueError(
                            f"{where}: image {image['id']} has licence {image['license']}, "
                            f"{known['source']} gives {known['license']}"
                        )
                    continue
                path = f"{folder}/{image['file_name']}"
                photos[image["id"]] = {
                    **image,
                    "file": f"coco-{image['id']}.jpg",
                    "source": f"{repository} `{path}` at {commit[:10]}",
                    "jpeg": shrink(git_show(git_dirs[repository], commit, path)),
                }
    return [photos[key] for key in sorted(photos)]


def attribution(photos: list[dict]) -> str:
    counts = defaultdict(int)
    for photo in photos:
        counts[KEPT_LICENCES[photo["license"]][2]] += 1
    breakdown = ", ".join(f"{count} {name}" for name, count in sorted(counts.items()))
    lines = [
        "# Bundled photos (the embedded default dataset)",
        "",
        f"{len(photos) + 8} photos: eight from the sample data of scientific Python packages and "
        f"{len(photos)} from COCO 2017 ({breakdown}). Each photo stays under its own licence, "
        "given here; the software's licence does not cover them.",
        "",
        "## From Python packages' sample data",
        "",
        "PNG originals were re-encoded as JPEG (quality 92).",
        "",
        EIGHT_PACKAGE_PHOTOS.rstrip("\n").replace(" \\\n", " "),
        "",
        "## From COCO 2017 (Flickr photos)",
        "",
        "Written by `tools/collect_photos.py` from public repositories that carry small COCO 2017 "
        "subsets with their annotation JSON (the repository, path and commit of each photo are "
        "in the table). The licence is the one COCO's annotation gives the image "
        "(`images[*].license` and the `licenses` table); the author is the Flickr user of the "
        "photo at the Flickr address COCO records (`flickr_url`; the number before the first "
        'underscore is the Flickr photo id). Only CC BY 2.0, CC BY-SA 2.0, "No known copyright '
        'restrictions" and US Government Work photos were kept. Each photo was shrunk to a '
        f"short side of at most {SHORT_SIDE} px and re-encoded as JPEG (quality {JPEG_QUALITY}); "
        "nothing else was changed. The categories are COCO's, largest annotated area first. "
        "COCO annotations: CC BY 4.0, the COCO Consortium.",
        "",
        "Licences: CC BY 2.0 https://creativecommons.org/licenses/by/2.0/ , CC BY-SA 2.0 "
        "https://creativecommons.org/licenses/by-sa/2.0/ , No known copyright restrictions "
        "https://www.flickr.com/commons/usage/ .",
        "",
        "| file | shows (COCO categories) | source (repository, path, commit) | original (Flickr) "
        "| licence |",
        "|---|---|---|---|---|",
    ]
    for photo in photos:
        shows = ", ".join(photo["categories"]) or "(no annotated object)"
        lines.append(
            f"| {photo['file']} | {shows} | {photo['source']} | {photo['flickr_url']} "
            f"(COCO: {photo['coco_url']}) | {KEPT_LICENCES[photo['license']][2]} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repo",
        action="append",
        default=[],
        metavar="OWNER/NAME=GIT_DIR",
        help="the git directory of one source repository (repeat for each)",
    )
    parser.add_argument("--out", type=Path, default=PHOTOS)
    args = parser.parse_args(argv)
    git_dirs = {}
    for item in args.repo:
        name, _, path = item.partition("=")
        git_dirs[name] = Path(path)
    photos = collect(git_dirs)
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in args.out.glob("coco-*.jpg"):
        stale.unlink()
    for photo in photos:
        (args.out / photo["file"]).write_bytes(photo["jpeg"])
    (args.out / "ATTRIBUTION.md").write_text(attribution(photos), encoding="utf-8")
    total = sum(len(photo["jpeg"]) for photo in photos)
    print(f"{len(photos)} COCO photos, {total / 1e6:.1f} MB, in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
