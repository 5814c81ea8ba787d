"""Snakemake adapter: list the featured images into blocks/images.json (no decoding)."""

from pipeline.blocks import BlocksSettings, run_list_featured
from pipeline.runtime import job_logging

with job_logging(snakemake.log[0], gpu=False):
    run_list_featured(BlocksSettings.from_config(snakemake.params.settings), snakemake.output[0])
