"""Snakemake adapter: compare the member runs' activations stores into compare.h5."""

from pipeline.compare import CompareSettings, run_compare
from pipeline.runtime import job_logging

with job_logging(snakemake.log[0], gpu=False):
    run_compare(
        CompareSettings.from_config(snakemake.params.settings),
        list(snakemake.input),
        snakemake.output[0],
    )
