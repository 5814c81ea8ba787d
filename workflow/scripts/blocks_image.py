"""Snakemake adapter: the Building Blocks of one featured image into blocks/images/<index>.h5."""
import json
from pathlib import Path

from pipeline.blocks.compute import run_image
from pipeline.model import load_model
from pipeline.runtime import job_logging, resolve_device

with job_logging(snakemake.log[0], threads=snakemake.threads,
                 gpu=bool(snakemake.resources.get("gpu", 0))):
    records = json.loads(Path(snakemake.input.images).read_text())["records"]
    record = records[int(snakemake.wildcards.index)]
    model = load_model(device=resolve_device(snakemake.params.device), **snakemake.params.model)
    run_image(model, record, snakemake.params.blocks, snakemake.output[0], progress=True)
