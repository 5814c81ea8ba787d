"""Snakemake adapter: merge the per-image Building Blocks files into blocks.h5."""

from pipeline.blocks import merge_blocks
from pipeline.runtime import job_logging

with job_logging(snakemake.log[0], gpu=False):
    merge_blocks(list(snakemake.input), snakemake.output[0])
