"""Snakemake adapter: the Building Blocks of one featured image into blocks/images/<index>.h5."""

from pipeline.blocks import BlocksSettings, run_blocks_image
from pipeline.model import ModelSpec
from pipeline.runtime import job_logging

with job_logging(snakemake.log[0], threads=snakemake.threads, gpu=bool(snakemake.resources.get("gpu", 0))):
    run_blocks_image(
        BlocksSettings.from_config(snakemake.params.settings),
        ModelSpec.from_config(snakemake.params.model),
        snakemake.input.images,
        int(snakemake.wildcards.index),
        snakemake.output[0],
    )
