"""Comparing models unit by unit: two or more runs over the same images.

* :mod:`~pipeline.compare.settings` :class:`CompareSettings`, the ``compare:`` config section
* :mod:`~pipeline.compare.cka`      linear CKA of every layer pair, minibatch unbiased HSIC
* :mod:`~pipeline.compare.match`    unit matching: correlation, best matches, one-to-one,
  best buddies, the chance threshold from split halves
* :mod:`~pipeline.compare.job`      :func:`run_compare`: the stores in, ``compare.h5`` out

The store's layout is :mod:`pipeline.store.compare` (docs/STORE.md, "Comparison store").
No torch anywhere here: the comparison reads the runs' activations stores only.
"""

from pipeline._lazy import lazy_attributes
from pipeline.compare.settings import CompareSettings

_LAZY = {"run_compare": "pipeline.compare.job"}

__all__ = ["CompareSettings", "run_compare"]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
