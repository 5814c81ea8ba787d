"""Snakemake adapter: list the image source (no decoding) into dataset/images.json."""

from pipeline.images import DatasetSettings, run_list_images
from pipeline.runtime import job_logging

with job_logging(snakemake.log[0], gpu=False):
    run_list_images(DatasetSettings.from_config(snakemake.params.settings), snakemake.output[0])
