"""Snakemake adapter: write the model's discovered layers to JSON."""

from pipeline.model import ModelSpec, run_discover_layers
from pipeline.runtime import job_logging

with job_logging(snakemake.log[0], threads=snakemake.threads):
    run_discover_layers(ModelSpec.from_config(snakemake.params.model), snakemake.output[0])
