"""The Building Blocks stage (Olah et al., Distill 2018): for a few featured images, what
the network sees at each position, where it looks, and why it decides.

The workflow lists the featured images, computes each image's blocks in one job, and
merges them into ``results/<run>/blocks.h5`` (docs/STORE.md, "Building Blocks store").

* :mod:`~pipeline.blocks.settings`   :class:`BlocksSettings`, the ``blocks:`` config section
* :mod:`~pipeline.blocks.compute`    one image's blocks: semantic dictionary, activation
  grid, spatial/channel and layer-to-layer attribution, neuron groups (tensors in, arrays out)
* :mod:`~pipeline.blocks.factorize`  the NMF behind the neuron groups (NumPy only)
* :mod:`~pipeline.blocks.job`        the jobs: :func:`run_list_featured`,
  :func:`run_blocks_image`, :func:`merge_blocks`

Importing this package does not import torch (the workflow imports the settings); the
job entry points load their module on first use (PEP 562).
"""

from pipeline._lazy import lazy_attributes
from pipeline.blocks.settings import BlocksSettings

_LAZY = {
    "run_list_featured": "pipeline.blocks.job",
    "run_blocks_image": "pipeline.blocks.job",
    "merge_blocks": "pipeline.blocks.job",
}

__all__ = ["BlocksSettings", "merge_blocks", "run_blocks_image", "run_list_featured"]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
