"""Snakemake adapter: the circuits of a few consecutive layers (each from the extracted layer
before it) into circuits/parts/<first layer>.h5."""

from pipeline.circuits import CircuitsSettings, run_circuits_layers
from pipeline.model import ModelSpec
from pipeline.runtime import job_logging

with job_logging(snakemake.log[0], threads=snakemake.threads, gpu=bool(snakemake.resources.get("gpu", 0))):
    run_circuits_layers(
        CircuitsSettings.from_config(snakemake.params.settings),
        ModelSpec.from_config(snakemake.params.model),
        snakemake.input.activations,
        snakemake.params.layers,
        snakemake.output[0],
    )
