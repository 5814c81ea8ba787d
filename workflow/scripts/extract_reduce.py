"""Snakemake adapter: reduce the shards into activations.h5 with dask reductions."""

import dask

from pipeline.extract import ExtractSettings, run_reduce
from pipeline.model import ModelSpec
from pipeline.runtime import job_logging

with (
    job_logging(snakemake.log[0], threads=snakemake.threads, gpu=False),
    dask.config.set(scheduler="threads", num_workers=snakemake.threads),
):
    run_reduce(
        ExtractSettings.from_config(snakemake.params.settings),
        ModelSpec.from_config(snakemake.params.model),
        list(snakemake.input.shards),
        snakemake.output[0],
    )
