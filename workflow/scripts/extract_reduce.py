"""Snakemake adapter: assemble activations.h5 from the shards, the merge and the examples."""

from pipeline.extract import ExtractSettings
from pipeline.extract.reduce_job import run_reduce_assemble
from pipeline.labels import LabelSettings
from pipeline.runtime import job_logging

with job_logging(snakemake.log[0], threads=snakemake.threads, gpu=False):
    run_reduce_assemble(
        ExtractSettings.from_config(snakemake.params.settings),
        list(snakemake.input.shards),
        snakemake.input.merged,
        list(snakemake.input.examples),
        snakemake.output[0],
        LabelSettings.from_config(snakemake.params.labels),
    )
