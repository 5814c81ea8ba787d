"""Circuits between consecutive layers: which channels of the layer before make a channel
fire, and which channels of the layer after it feeds, measured on its top dataset examples.

Definition. For consecutive extracted layers ``P`` (previous) and ``L``, and channel ``c``
of ``L``, take ``c``'s top ``N`` dataset examples (``N = circuits.examples``): the image
rows and the position ``(y, x)`` of ``c``'s spatial maximum on each, as the activations
store keeps them. Missing examples (row < 0, value NaN) and those on which ``c`` does not
fire (value <= 0) are skipped. On each remaining image the **target** is ``c``'s
activation ``a_L[c, y, x]``, and its attribution to channel ``c'`` of ``P`` is gradient x
activation at ``P`` summed over ``P``'s positions::

    attr(c' -> c; image) = sum_{y', x'}  d a_L[c, y, x] / d a_P[c', y', x']  *  a_P[c', y', x']

``from_previous[c, c']`` is its mean over ``c``'s used examples (0 when none is usable) and
``examples[c]`` how many were used.

* **Upstream** of ``c``: row ``c`` of ``L``'s matrix: the channels of ``P`` that drive ``c``
  (largest positive values) and those that hold it back (most negative).
* **Downstream** of channel ``c'`` of ``P``: column ``c'`` of ``L``'s matrix: the channels
  of ``L`` that ``c'`` feeds most.
* The first extracted layer has no upstream, the last no downstream. Where the extraction
  skips layers, "previous" means the previous *extracted* layer, and the attribution runs
  through every layer in between.

For a linear, bias-free map ``P -> L`` (say a 1x1 convolution ``W``),
``attr(c' -> c) = W[c, c'] * a_P[c', y, x]`` and a row sums to the target exactly (Euler's
theorem); in general it is the first-order estimate of how much of ``c``'s activation
``c'`` accounts for on that image (how much it would drop if ``c'`` were zero).

Cost: per layer, each image among the used examples of any channel runs forward once (up
to ``L``), then backward once per (channel, example) on it, from ``L`` to ``P`` only
(:func:`pipeline.model.attribution.attribute_to_earlier`).

Everything here is computation: arrays and tensors in, NumPy arrays out. The job
(:mod:`pipeline.circuits.job`) reads the activations store and writes
:mod:`pipeline.store.circuits`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch

from pipeline.model.attribution import Unit, attribute_to_earlier


@dataclasses.dataclass(frozen=True)
class Targets:
    """One layer's targets: ``units[row]`` lists the ``(channel, y, x)`` whose activation on
    image ``row`` is attributed (images ascending, channels ascending); ``examples`` int32
    ``[C]`` how many examples each channel uses; ``ranks`` how many top examples per
    channel were considered."""

    units: dict[int, list[Unit]]
    examples: np.ndarray
    ranks: int

    @property
    def count(self) -> int:
        """Backward passes needed: one per (channel, example)."""
        return int(self.examples.sum())


def select_targets(
    row: np.ndarray, value: np.ndarray, y: np.ndarray, x: np.ndarray, examples: int
) -> Targets:
    """The targets of one layer from its top examples (``[C, k]`` arrays, strongest first,
    as :meth:`pipeline.store.activations_reader.ActivationsStore.top` gives them): each
    channel's first ``examples`` ranks, without missing ones (row < 0, value not finite)
    and those where the channel does not fire (value <= 0)."""
    if int(examples) < 1:
        raise ValueError(f"circuits need at least 1 example per channel, got {examples}")
    row, value, y, x = np.asarray(row), np.asarray(value, dtype=np.float64), np.asarray(y), np.asarray(x)
    if row.ndim != 2 or not row.shape == value.shape == y.shape == x.shape:
        raise ValueError(
            f"top examples must be [C, k] arrays of one shape; got row {row.shape}, value {value.shape}, "
            f"y {y.shape}, x {x.shape}"
        )
    ranks = min(int(examples), row.shape[1])
    row, value = row[:, :ranks], value[:, :ranks]
    used = (row >= 0) & np.isfinite(value) & (value > 0)
    units: dict[int, list[Unit]] = {}
    for channel, rank in zip(*np.nonzero(used)):  # row-major: channels ascending
        unit = (int(channel), int(y[channel, rank]), int(x[channel, rank]))
        units.setdefault(int(row[channel, rank]), []).append(unit)
    return Targets(units=dict(sorted(units.items())), examples=used.sum(axis=1).astype(np.int32), ranks=ranks)


def layer_circuits(
    model,
    previous: str,
    layer: str,
    targets: Targets,
    load_image: Callable[[int], torch.Tensor],
    *,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """``layer``'s circuits from ``previous`` (see the module doc) on the model's device.

    ``load_image(row)`` gives image ``row`` as ``[3, S, S]`` in ``[0, 1]``. Returns
    ``from_previous`` float32 ``[C_L, C_P]`` and ``examples`` int32 ``[C_L]``.
    """
    c_layer, c_previous = model.layer(layer).channels, model.layer(previous).channels
    if len(targets.examples) != c_layer:
        raise ValueError(f"targets for {len(targets.examples)} channels, but {layer} has {c_layer}")
    sums = torch.zeros(c_layer, c_previous, dtype=torch.float64)
    bar = _progress(targets.count, f"circuits {layer}") if progress else None
    try:
        for row, units in targets.units.items():
            per_target = attribute_to_earlier(
                model, load_image(row), previous, layer, units, _sum_over_space, to_cpu=False
            )
            channels = torch.tensor([unit[0] for unit in units])
            sums.index_add_(0, channels, torch.stack(per_target).double().cpu())
            if bar is not None:
                bar.update(len(units))
    finally:
        if bar is not None:
            bar.close()
    counts = torch.from_numpy(targets.examples.astype(np.float64))
    mean = sums / counts.clamp(min=1)[:, None]
    return {"from_previous": mean.float().numpy(), "examples": targets.examples.astype(np.int32)}


def _sum_over_space(attr: torch.Tensor) -> torch.Tensor:
    return attr.sum(dim=(1, 2))


def _progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="example")
