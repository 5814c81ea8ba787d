"""Which units to trust: per-unit scores from the stores (issue 26).

For every channel of every extracted layer: visualization strength and specificity, class
selectivity, clarity and polysemanticity of its top examples, the path check of its
visualization, label precision and sparsity. The ``scores`` workflow rule runs one job
(:func:`run_scores`) that reads ``activations.h5`` and ``featurevis.h5``, runs the model
on the top examples' crops and the visualizations only (no pass over the dataset), and
writes ``results/<run>/scores.h5`` (docs/STORE.md, "Scores store").

* :mod:`~pipeline.scores.settings`     :class:`ScoresSettings`, the ``scores:`` config section
* :mod:`~pipeline.scores.definitions`  each score's one-line definition and sentence (no numpy)
* :mod:`~pipeline.scores.compute`      the scores themselves: arrays in, arrays out
* :mod:`~pipeline.scores.embed`        the model's pooled activation vectors of small images
* :mod:`~pipeline.scores.job`          the job: stores in, scores.h5 out

Importing this package does not import torch; the job loads on first use (PEP 562).
"""

from pipeline._lazy import lazy_attributes
from pipeline.scores.definitions import SCORE_KEYS, SCORES, Score
from pipeline.scores.settings import ScoresSettings

_LAZY = {"run_scores": "pipeline.scores.job"}

__all__ = ["SCORES", "SCORE_KEYS", "Score", "ScoresSettings", "run_scores"]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
