"""Snakemake adapter: extract one shard of images into extract/shards/<start>-<stop>.h5."""

from pipeline.extract import ExtractSettings, run_extract_shard
from pipeline.extract.sampling import AtlasSampling
from pipeline.model import ModelSpec
from pipeline.runtime import job_logging

with job_logging(snakemake.log[0], threads=snakemake.threads, gpu=bool(snakemake.resources.get("gpu", 0))):
    run_extract_shard(
        ExtractSettings.from_job(snakemake.params.settings, snakemake.resources),
        ModelSpec.from_config(snakemake.params.model),
        snakemake.input.images,
        int(snakemake.wildcards.start),
        int(snakemake.wildcards.stop),
        snakemake.output[0],
        AtlasSampling.from_config(snakemake.params.atlas) if snakemake.params.atlas else None,
    )
