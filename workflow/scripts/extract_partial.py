"""Snakemake adapter: one shard's partial reduction into extract/partials/<start>-<stop>.h5."""

from pipeline.extract import ExtractSettings
from pipeline.extract.reduce_job import run_reduce_partial
from pipeline.runtime import job_logging

with job_logging(snakemake.log[0], threads=snakemake.threads, gpu=False):
    run_reduce_partial(
        ExtractSettings.from_config(snakemake.params.settings), snakemake.input[0], snakemake.output[0]
    )
