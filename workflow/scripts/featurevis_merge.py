"""Snakemake adapter: merge the feature-visualization shards into the run's store."""
import logging

from pipeline.runtime import job_logging
from pipeline.store.featurevis import FeatureVisStore, merge_shards

with job_logging(snakemake.log[0], threads=snakemake.threads, gpu=False):
    merge_shards(list(snakemake.input), snakemake.output[0])
    with FeatureVisStore(snakemake.output[0]) as store:
        for layer, row in store.summary().items():
            logging.getLogger("pipeline.featurevis.render").info(
                "%s: %d of %d channels rendered, %.1f%% rank 1 on their own image",
                layer, row["rendered"], row["layer_channels"], 100 * row["rank1_fraction"])
