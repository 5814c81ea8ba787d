"""Snakemake adapter: merge the per-image Building Blocks files into blocks.h5."""
from pipeline.runtime import job_logging
from pipeline.store.blocks import merge_files

with job_logging(snakemake.log[0], gpu=False):
    merge_files(list(snakemake.input), snakemake.output[0])
