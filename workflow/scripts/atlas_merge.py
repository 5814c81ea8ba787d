"""Snakemake adapter: every atlas layer's layout and icons into atlas.h5."""

from pipeline.runtime import job_logging
from pipeline.store.atlas import merge_atlas

with job_logging(snakemake.log[0], gpu=False):
    merge_atlas(list(snakemake.input.layouts), list(snakemake.input.icons), snakemake.output[0])
