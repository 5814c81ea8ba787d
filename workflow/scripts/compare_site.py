"""Snakemake adapter: compare.h5 and the member runs' folders -> the comparison site."""

from pathlib import Path

from pipeline.runtime import job_logging
from pipeline.site.compare_site import run_comparison_site

with job_logging(snakemake.log[0], gpu=False):
    run_comparison_site(
        snakemake.input.compare,
        {run: Path(store).parent for run, store in zip(snakemake.params.runs, snakemake.input.members)},
        snakemake.output[0],
    )
