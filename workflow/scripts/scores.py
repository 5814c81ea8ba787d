"""Snakemake adapter: every extracted layer's trust scores into scores.h5."""

from pipeline.model import ModelSpec
from pipeline.runtime import job_logging
from pipeline.scores import ScoresSettings, run_scores

with job_logging(snakemake.log[0], threads=snakemake.threads, gpu=bool(snakemake.resources.get("gpu", 0))):
    run_scores(
        ScoresSettings.from_job(snakemake.params.settings, snakemake.resources),
        ModelSpec.from_config(snakemake.params.model),
        snakemake.input.activations,
        snakemake.input.featurevis[0] if snakemake.input.featurevis else None,
        snakemake.output[0],
    )
