"""The extraction stage: every selected layer's activations and attributions over a dataset.

The workflow lists the image source (:func:`pipeline.images.run_list_images`), splits
the listing into shards of ``images_per_shard`` images, extracts each shard in one job
and reduces the shards (map-reduce: a partial per shard, one merge) into
``results/<run>/activations.h5`` (docs/STORE.md, "Activations store"): top dataset
examples with thumbnails, statistics, class attribution and correlation per channel.

* :mod:`~pipeline.extract.settings`    :class:`ExtractSettings`, the ``extract:`` config
* :mod:`~pipeline.extract.extractor`   per-image summaries of a batch (tensors in, tensors out)
* :mod:`~pipeline.extract.reduce`      the reductions as per-shard partials and their merge (arrays)
* :mod:`~pipeline.extract.crops`       the examples' thumbnails and activation maps
* :mod:`~pipeline.extract.similarity`  channel similarity over the dataset (NumPy only)
* :mod:`~pipeline.extract.sampling`    the activation atlas's vectors, sampled in the same pass
* :mod:`~pipeline.extract.job`         the extraction job: :func:`run_extract_shard`
* :mod:`~pipeline.extract.reduce_job`  the reduction's jobs (partial, merge, examples, store)
  and :func:`run_reduce`, all of them in one process

Importing this package does not import torch (the workflow imports the settings); the
job entry points load their module on first use (PEP 562).
"""

from pipeline._lazy import lazy_attributes
from pipeline.extract.settings import ExtractSettings

_LAZY = {"run_extract_shard": "pipeline.extract.job", "run_reduce": "pipeline.extract.reduce_job"}

__all__ = ["ExtractSettings", "run_extract_shard", "run_reduce"]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
