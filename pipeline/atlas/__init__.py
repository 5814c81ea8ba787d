"""Activation atlases (Carter et al., "Activation Atlas", Distill 2019): the whole
dataset's view of a layer.

The extraction pass samples a few activation vectors per image of each atlas layer
(:mod:`pipeline.extract.sampling`; stored in the extraction shards). For each layer, one
job lays the vectors out in 2-D with UMAP and bins them into grids at several zoom levels;
each kept cell gets its mean vector, the attribution of that mean vector to every class
(fed through the rest of the network, tiled over the layer), its top classes and its
dataset examples (``results/<run>/atlas/<layer>/layout.h5``). Render jobs draw each
cell's mean vector as an icon, and a merge writes ``results/<run>/atlas.h5``
(docs/STORE.md, "Atlas store"; :mod:`pipeline.store.atlas`).

* :mod:`~pipeline.atlas.settings`     :class:`AtlasSettings`, the ``atlas:`` config section
* :mod:`~pipeline.atlas.layout`       UMAP, grids, cells, examples (NumPy in, arrays out)
* :mod:`~pipeline.atlas.attribution`  a mean vector's attribution to every class (torch)
* :mod:`~pipeline.atlas.job`          the layout job: :func:`run_atlas_layout`

Importing this package does not import torch or UMAP (the workflow imports the
settings); the job entry point loads its module on first use (PEP 562).
"""

from pipeline._lazy import lazy_attributes
from pipeline.atlas.settings import AtlasSettings

_LAZY = {"run_atlas_layout": "pipeline.atlas.job"}

__all__ = ["AtlasSettings", "run_atlas_layout"]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
