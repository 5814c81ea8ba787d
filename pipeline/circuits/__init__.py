"""Circuits: for every channel, the channels of the layer before that contribute most to it
(upstream) and the channels of the layer after that it feeds most (downstream), measured by
attribution over the channel's top dataset examples.

The workflow runs one job per extracted layer that has a previous one, each reading the
activations store for its layer's top examples, and merges the layer files into
``results/<run>/circuits.h5`` (docs/STORE.md, "Circuits store").

* :mod:`~pipeline.circuits.settings`  :class:`CircuitsSettings`, the ``circuits:`` config section
* :mod:`~pipeline.circuits.compute`   the definition and the computation (tensors in, arrays out)
* :mod:`~pipeline.circuits.job`       the jobs: :func:`run_circuits_layers`, :func:`merge_circuits`

Importing this package does not import torch (the workflow imports the settings); the
job entry points load their module on first use (PEP 562).
"""

from pipeline._lazy import lazy_attributes
from pipeline.circuits.settings import CircuitsSettings

_LAZY = {
    "run_circuits_layers": "pipeline.circuits.job",
    "merge_circuits": "pipeline.circuits.job",
}

__all__ = ["CircuitsSettings", "merge_circuits", "run_circuits_layers"]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
