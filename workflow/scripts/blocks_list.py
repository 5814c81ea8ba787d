"""Snakemake adapter: list the featured images into blocks/images.json (no decoding)."""
import json
from pathlib import Path

from pipeline.blocks.compute import featured_images
from pipeline.runtime import job_logging

with job_logging(snakemake.log[0], gpu=False):
    records = featured_images(snakemake.params.images)
    Path(snakemake.output[0]).write_text(json.dumps({"records": records}, indent=1))
