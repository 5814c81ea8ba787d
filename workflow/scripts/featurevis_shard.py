"""Snakemake adapter: render one (layer, channel range) shard of feature visualizations."""

from pipeline.featurevis import FeaturevisSettings, run_featurevis_shard
from pipeline.model import ModelSpec
from pipeline.runtime import job_logging

with job_logging(snakemake.log[0], threads=snakemake.threads, gpu=bool(snakemake.resources.get("gpu", 0))):
    run_featurevis_shard(
        FeaturevisSettings.from_config(snakemake.params.settings),
        ModelSpec.from_config(snakemake.params.model),
        snakemake.wildcards.layer,
        int(snakemake.wildcards.start),
        int(snakemake.wildcards.stop),
        snakemake.output[0],
    )
