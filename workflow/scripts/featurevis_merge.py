"""Snakemake adapter: merge the feature-visualization shards into the run's store."""

from pipeline.featurevis import merge_featurevis
from pipeline.runtime import job_logging

with job_logging(snakemake.log[0], threads=snakemake.threads, gpu=False):
    merge_featurevis(list(snakemake.input), snakemake.output[0])
