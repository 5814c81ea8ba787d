"""Snakemake adapter: merge the shards' partials into extract/merged.h5."""

from pipeline.extract import ExtractSettings
from pipeline.extract.reduce_job import run_reduce_merge
from pipeline.model import ModelSpec
from pipeline.runtime import job_logging

with job_logging(snakemake.log[0], threads=snakemake.threads, gpu=False):
    run_reduce_merge(
        ExtractSettings.from_config(snakemake.params.settings),
        ModelSpec.from_config(snakemake.params.model),
        list(snakemake.input.shards),
        list(snakemake.input.partials),
        snakemake.output[0],
    )
