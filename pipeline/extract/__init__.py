"""The extraction stage: every selected layer's activations and attributions over a dataset.

The workflow lists the image source (:func:`pipeline.images.run_list_images`), splits
the listing into shards of ``images_per_shard`` images, extracts each shard in one job
and reduces all shards into ``results/<run>/activations.h5`` (docs/STORE.md,
"Activations store"): top dataset examples with thumbnails, statistics and class
attribution per channel.

* :mod:`~pipeline.extract.settings`    :class:`ExtractSettings`, the ``extract:`` config
* :mod:`~pipeline.extract.extractor`   per-image summaries of a batch (tensors in, tensors out)
* :mod:`~pipeline.extract.reduce`      the dask reductions over all shards (arrays in, arrays out)
* :mod:`~pipeline.extract.similarity`  channel similarity over the dataset (NumPy only)
* :mod:`~pipeline.extract.sampling`    the activation atlas's vectors, sampled in the same pass
* :mod:`~pipeline.extract.job`         the jobs: :func:`run_extract_shard`, :func:`run_reduce`

Importing this package does not import torch (the workflow imports the settings); the
job entry points load their module on first use (PEP 562).
"""

from pipeline._lazy import lazy_attributes
from pipeline.extract.settings import ExtractSettings

_LAZY = {"run_extract_shard": "pipeline.extract.job", "run_reduce": "pipeline.extract.job"}

__all__ = ["ExtractSettings", "run_extract_shard", "run_reduce"]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
