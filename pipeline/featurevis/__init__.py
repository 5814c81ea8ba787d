"""The feature-visualization stage: every selected channel of every selected layer, rendered.

The workflow splits each layer's selected channels into shards of ``channels_per_job``
ids; one job renders one shard, a batch of channels at a time, and a merge combines
the shards into ``results/<run>/featurevis.h5`` (docs/STORE.md, "Feature visualization
store").

* :mod:`~pipeline.featurevis.settings`  :class:`FeaturevisSettings`, the ``featurevis:`` config
* :mod:`~pipeline.featurevis.plan`      channel selection and shard planning (no torch)
* :mod:`~pipeline.featurevis.render`    one batch: main, diverse and negative images, and
  each channel's activation and rank on its stored image (tensors in, arrays out)
* :mod:`~pipeline.featurevis.job`       the jobs: :func:`run_featurevis_shard`,
  :func:`merge_featurevis`

Importing this package does not import torch (the workflow imports the settings and
the plan functions); the job entry points load their module on first use (PEP 562).
"""

from pipeline._lazy import lazy_attributes
from pipeline.featurevis.plan import batches, parse_channels, plan_shards, shard_channels
from pipeline.featurevis.settings import FeaturevisSettings

_LAZY = {"run_featurevis_shard": "pipeline.featurevis.job", "merge_featurevis": "pipeline.featurevis.job"}

__all__ = [
    "FeaturevisSettings",
    "batches",
    "merge_featurevis",
    "parse_channels",
    "plan_shards",
    "run_featurevis_shard",
    "shard_channels",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
