"""The static atlas site, built from a run's stores alone (no model, no torch).

* :mod:`pipeline.site.data`      :class:`AtlasData`, everything the pages show, as plain data
* :mod:`pipeline.site.reader`    :func:`from_results`: a run folder -> ``AtlasData`` (images lazy)
* :mod:`pipeline.site.build`     :func:`build_site`: ``AtlasData`` -> HTML, PNGs, JSON (reproducible)
* :mod:`pipeline.site.settings`  :class:`SiteSettings`, the config's ``site:`` section
* :mod:`pipeline.site.job`       :func:`run_site`, the workflow's entry point

>>> run_site(SiteSettings(top_examples=8), "results/demo", "results/demo/site")

Templates, CSS and script live in the repository's ``site/`` folder (never a Python
package: ``site`` is a standard-library name).
"""

from pipeline.site.build import build_site
from pipeline.site.data import AtlasData
from pipeline.site.job import run_site
from pipeline.site.reader import from_results
from pipeline.site.settings import SiteSettings

__all__ = ["AtlasData", "SiteSettings", "build_site", "from_results", "run_site"]
