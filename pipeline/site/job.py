"""The site stage's one entry point: a run folder's stores in, its static site out."""

from __future__ import annotations

from pathlib import Path

from pipeline.labels.rule import LabelSettings
from pipeline.site.build import build_site
from pipeline.site.reader import from_results
from pipeline.site.settings import SiteSettings


def run_site(
    settings: SiteSettings,
    run_dir,
    out_dir,
    *,
    threads: int = 1,
    progress: bool = True,
    labels: LabelSettings | None = None,
) -> Path:
    """Read ``run_dir`` (``results/<run>``) into page data and write the site to ``out_dir``.

    ``labels`` label the channels, neuron groups and atlas cells the pages show (default:
    the run's ``labels:`` settings, as its stored channel labels were made).

    ``threads`` bounds the dask reads of per-image activations (the most-similar
    channels); returns ``out_dir``. Reads the stores only: no model, no torch.
    """
    import dask

    with (
        dask.config.set(scheduler="threads", num_workers=max(1, int(threads))),
        from_results(run_dir, settings, labels) as data,
    ):
        return build_site(data, out_dir, settings, progress=progress)
