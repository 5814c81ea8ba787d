"""Snakemake adapter: one atlas layer's layout (UMAP, grids, cells) into atlas/<layer>/layout.h5."""

from pipeline.atlas import AtlasSettings, run_atlas_layout
from pipeline.model import ModelSpec
from pipeline.runtime import job_logging

with job_logging(snakemake.log[0], threads=snakemake.threads, gpu=bool(snakemake.resources.get("gpu", 0))):
    run_atlas_layout(
        AtlasSettings.from_config(snakemake.params.settings),
        ModelSpec.from_config(snakemake.params.model),
        snakemake.input.activations,
        snakemake.wildcards.layer,
        snakemake.output[0],
    )
