"""Snakemake adapter: read the run's stores into AtlasData and write the static site."""
from pathlib import Path

import dask

from pipeline.site.reader import from_results
from pipeline.site.build import SiteOptions, build_site
from pipeline.runtime import job_logging

cfg = snakemake.params.site
run_dir = Path(snakemake.input[0]).parent.parent   # <run>/model/layers.json
with job_logging(snakemake.log[0], gpu=False), \
        dask.config.set(scheduler="threads", num_workers=snakemake.threads):
    with from_results(run_dir, top_examples=cfg["top_examples"],
                      top_classes=cfg["top_classes"], similar=cfg["similar_channels"],
                      class_channels=cfg["class_channels"], title=cfg["title"]) as data:
        build_site(data, snakemake.output[0], options=SiteOptions(
            thumbnail_size=cfg["thumbnail_size"], class_channels=cfg["class_channels"], progress=True))
