"""Snakemake adapter: a shard's histogram counts and example crops into
extract/examples/<start>-<stop>.h5."""

from pipeline.extract import ExtractSettings
from pipeline.extract.reduce_job import run_shard_examples
from pipeline.model import ModelSpec
from pipeline.runtime import job_logging

with job_logging(snakemake.log[0], threads=snakemake.threads, gpu=bool(snakemake.resources.get("gpu", 0))):
    run_shard_examples(
        ExtractSettings.from_job(snakemake.params.settings, snakemake.resources),
        ModelSpec.from_config(snakemake.params.model),
        snakemake.input.merged,
        snakemake.input.shard,
        snakemake.output[0],
    )
