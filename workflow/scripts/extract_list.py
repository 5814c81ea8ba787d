"""Snakemake adapter: list the image source (no decoding) into dataset/images.json."""
import json
from pathlib import Path

from pipeline.images.dataset import open_source
from pipeline.runtime import job_logging

with job_logging(snakemake.log[0], gpu=False):
    cfg = snakemake.params.dataset
    source = open_source(kind=cfg["kind"], path=cfg.get("path"), max_images=cfg.get("max_images"))
    if not source.records:  # open_source refuses empty sources too; never extract nothing
        raise ValueError(f"dataset: the image source {source.name!r} holds no images")
    listing = {"source": source.name, "kind": cfg["kind"], "path": cfg.get("path"),
               "max_images": cfg.get("max_images"), "labels": source.labels,
               "records": [{"image_id": r.image_id, "path": str(r.path), "label": r.label}
                           for r in source.records]}
    Path(snakemake.output[0]).write_text(json.dumps(listing, indent=1))
