"""Snakemake adapter: extract one shard of images into extract/shards/<start>-<stop>.h5."""

from pipeline.extract import ExtractSettings, run_extract_shard
from pipeline.extract.sampling import AtlasSampling
from pipeline.model import ModelSpec
from pipeline.runtime import job_logging

# Speed settings come as the rule's resources, not params, so that changing them re-runs
# nothing (workflow/rules/common.smk).
speed = {key: snakemake.resources[key] for key in ExtractSettings.SPEED_KEYS}
with job_logging(snakemake.log[0], threads=snakemake.threads, gpu=bool(snakemake.resources.get("gpu", 0))):
    run_extract_shard(
        ExtractSettings.from_config({**snakemake.params.settings, **speed}),
        ModelSpec.from_config(snakemake.params.model),
        snakemake.input.images,
        int(snakemake.wildcards.start),
        int(snakemake.wildcards.stop),
        snakemake.output[0],
        AtlasSampling.from_config(snakemake.params.atlas) if snakemake.params.atlas else None,
    )
