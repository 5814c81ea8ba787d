"""Snakemake adapter: the icons of one range of one atlas level's cells."""

from pipeline.atlas import AtlasSettings
from pipeline.atlas.render import run_atlas_render
from pipeline.featurevis import FeaturevisSettings
from pipeline.model import ModelSpec
from pipeline.runtime import job_logging

with job_logging(snakemake.log[0], threads=snakemake.threads, gpu=bool(snakemake.resources.get("gpu", 0))):
    run_atlas_render(
        AtlasSettings.from_config(snakemake.params.settings),
        FeaturevisSettings.from_config(snakemake.params.featurevis),
        ModelSpec.from_config(snakemake.params.model),
        snakemake.input[0],
        snakemake.wildcards.layer,
        int(snakemake.wildcards.level),
        range(int(snakemake.wildcards.start), int(snakemake.wildcards.stop)),
        snakemake.output[0],
    )
