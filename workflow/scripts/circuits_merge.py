"""Snakemake adapter: merge the per-layer circuits files into circuits.h5."""

from pipeline.circuits import CircuitsSettings, merge_circuits
from pipeline.runtime import job_logging

with job_logging(snakemake.log[0], gpu=False):
    merge_circuits(
        CircuitsSettings.from_config(snakemake.params.settings),
        snakemake.input.activations,
        list(snakemake.input.layers),
        snakemake.output[0],
    )
