"""Snakemake adapter: the run's stores -> its static site (pipeline.site.run_site)."""

from pathlib import Path

from pipeline.runtime import job_logging
from pipeline.site import SiteSettings, run_site

with job_logging(snakemake.log[0], gpu=False):
    run_site(
        SiteSettings.from_config(snakemake.params.site),
        run_dir=Path(snakemake.input[0]).parent.parent,  # <run>/model/layers.json
        out_dir=snakemake.output[0],
        threads=snakemake.threads,
    )
