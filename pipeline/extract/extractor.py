"""The extraction pass: per-image summaries of every selected layer (pure: batches in, arrays out).

For each image and each channel of each selected layer an :class:`Extractor` computes

==================  ========  =====================================================
``max``             float32   maximum of the channel over space
``argmax_y/x``      int16     position of that maximum (first in row-major order on ties)
``min``             float32   minimum of the channel over space (its most negative response)
``argmin_y/x``      int16     position of that minimum (first in row-major order on ties)
``mean``            float32   mean of the channel over space
``attr_predicted``  float32   channel attribution (summed over space) to the predicted class
``attr_label``      float32   the same towards the labelled class; NaN without a usable label
==================  ========  =====================================================

plus the model's top-5 class ids and logits. Attribution is gradient x activation
(one backward pass per target serving every layer) or, by setting, its
path-integrated variant; see :mod:`pipeline.model.attribution`.

With a :class:`~pipeline.extract.sampling.PositionSampler`, the pass also keeps a few
activation vectors per image of the atlas layers (:mod:`pipeline.extract.sampling`);
an atlas layer that is not among the summarised layers is tapped for that alone.

Nothing here writes files: :func:`extract_batches` yields summaries that
:mod:`pipeline.store.activations` writes. Only the current batch is ever held,
so memory does not grow with the dataset.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterable, Iterator, Sequence

import torch

from pipeline.extract.sampling import PositionSampler
from pipeline.model.attribution import PREDICTED, LayerAttribution
from pipeline.model.hooks import LayerTap

log = logging.getLogger(__name__)

ATTRIBUTION_MODES = ("none", "gradient", "integrated")
LAYER_QUANTITIES = (
    "max",
    "argmax_y",
    "argmax_x",
    "min",
    "argmin_y",
    "argmin_x",
    "mean",
    "attr_predicted",
    "attr_label",
)
TOP_PREDICTIONS = 5


@dataclasses.dataclass
class BatchSummary:
    """Per-image arrays of one batch, on the CPU.

    ``layers[layer][quantity]`` is ``[N, C]`` for the quantities in ``LAYER_QUANTITIES``
    that were computed; ``top_ids`` (Long) and ``top_logits`` (float32) are ``[N, 5]``
    (fewer columns when the model has fewer classes). ``atlas[layer]`` holds the atlas
    samples of the batch (NumPy arrays, ``row`` = index in the batch; see
    :meth:`pipeline.extract.sampling.PositionSampler.sample`), empty without a sampler.
    """

    layers: dict[str, dict[str, torch.Tensor]]
    top_ids: torch.Tensor
    top_logits: torch.Tensor
    atlas: dict[str, dict] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.top_ids)


def summarize_activation(act: torch.Tensor) -> dict[str, torch.Tensor]:
    """``act [N, C, H, W]`` -> ``max``, ``min``, ``mean`` (float32), ``argmax_y``/``argmax_x``,
    ``argmin_y``/``argmin_x`` (int16), all ``[N, C]``

    Ties resolve to the first extremum in row-major order (``torch.max``/``torch.min`` guarantee it).
    """
    n, c, h, w = act.shape
    if max(h, w) > torch.iinfo(torch.int16).max:
        raise ValueError(f"feature map {h}x{w} too large for int16 positions")
    flat = act.detach().float().reshape(n, c, h * w)
    values, where = flat.max(dim=2)
    lows, low_where = flat.min(dim=2)
    return {
        "max": values,
        "argmax_y": (where // w).to(torch.int16),
        "argmax_x": (where % w).to(torch.int16),
        "min": lows,
        "argmin_y": (low_where // w).to(torch.int16),
        "argmin_x": (low_where % w).to(torch.int16),
        "mean": flat.mean(dim=2),
    }


class Extractor:
    """Summaries of fixed layers of a model for batches of images.

    ``attribution`` is ``"none"``, ``"gradient"`` or ``"integrated"`` (``steps`` path
    points). ``amp=True`` runs the forward pass under CUDA autocast (float16); the
    summaries are always float32. ``sampler`` also samples activation vectors of its
    layers for the atlas (then each call needs the images' listing indices).
    """

    def __init__(
        self,
        model,
        layers: Sequence[str] | str | None = None,
        *,
        attribution: str = "gradient",
        steps: int = 20,
        amp: bool = False,
        sampler: PositionSampler | None = None,
    ):
        if attribution not in ATTRIBUTION_MODES:
            raise ValueError(
                f"attribution {attribution!r} unknown; use one of {', '.join(ATTRIBUTION_MODES)}"
            )
        self.model = model
        infos = model.resolve_layers(layers)
        self.layers = [info.name for info in infos]
        self.attribution = attribution
        self.steps = int(steps)
        self.amp = bool(amp) and model.device.type == "cuda"
        self.sampler = sampler
        if sampler is not None:
            self.atlas_layers = [info.name for info in model.resolve_layers(list(sampler.layers))]
            # Summarised and sampled layers, in execution order: one pass taps them all.
            infos = model.resolve_layers([*self.layers, *self.atlas_layers])
        else:
            self.atlas_layers = []
        tapped = [info.name for info in infos]
        self._tap = LayerTap(model.net, model.modules_for(infos))
        self._attr = LayerAttribution(model, tapped) if attribution != "none" else None

    def __call__(
        self,
        images01: torch.Tensor,
        label_classes: torch.Tensor | None = None,
        listing_indices: Sequence[int] | None = None,
    ) -> BatchSummary:
        """Summarize ``images01 [N, 3, S, S]`` in ``[0, 1]``; ``label_classes`` Long[N], -1 = no label;
        ``listing_indices``: each image's index in the listing (needed with a sampler)."""
        if self.sampler is not None and listing_indices is None:
            raise ValueError("an Extractor that samples for the atlas needs the images' listing indices")
        images01 = images01.to(self.model.device, non_blocking=True)
        with self._autocast():
            if self._attr is None:
                with torch.no_grad():
                    acts, logits = self._tap(self.model.normalize(images01), truncate=False)
                attributions = {}
            else:
                targets = {"attr_predicted": PREDICTED}
                has_label = label_classes is not None and bool((label_classes >= 0).any())
                if has_label:
                    label_classes = label_classes.to(self.model.device)
                    targets["attr_label"] = label_classes
                results = self._attr.attribute_targets(
                    images01, targets, method=self.attribution, steps=self.steps
                )
                first = next(iter(results.values()))
                acts, logits = first.activations, first.logits
                attributions = results
        layers = {}
        for name in self.layers:
            out = summarize_activation(acts[name])
            for quantity, result in attributions.items():
                out[quantity] = result.channel(name).float()
            if "attr_label" in attributions:
                # Attribution "to no label" is undefined, not zero.
                out["attr_label"][label_classes < 0] = float("nan")
            layers[name] = {q: t.cpu() for q, t in out.items()}
        atlas = {}
        for name in self.atlas_layers:
            predicted = attributions.get("attr_predicted")
            spatial = None if predicted is None else predicted.spatial(name)
            atlas[name] = self.sampler.sample(acts[name], spatial, [int(i) for i in listing_indices])
        top = min(TOP_PREDICTIONS, logits.shape[1])
        # torch's topk on the device, not pipeline.ranking: the stored predictions were made
        # so, and torch orders tied logits its own way (which ranking's "lower index first"
        # could reorder); the logits stay on the GPU until this small table is taken.
        top_logits, top_ids = logits.detach().float().topk(top, dim=1)
        return BatchSummary(layers=layers, top_ids=top_ids.cpu(), top_logits=top_logits.cpu(), atlas=atlas)

    def _autocast(self):
        if self.amp:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()


# ---------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------


def class_lookup(class_names: Sequence[str]) -> dict[str, int]:
    """Label text -> class index: exact class names, and ImageNet wnids for 1000-class models."""
    lookup: dict[str, int] = {}
    if len(class_names) == 1000:
        try:
            from timm.data import ImageNetInfo  # ships the synset list; no download

            lookup.update({wnid: i for i, wnid in enumerate(ImageNetInfo().label_names())})
        except Exception as exc:  # an old timm: names still match
            log.warning("ImageNet wnids unavailable (%s); labels match class names only", exc)
    for i, name in enumerate(class_names):
        lookup.setdefault(name, i)  # first class wins for duplicated names
    return lookup


def label_classes(labels: Sequence[str | None], class_names: Sequence[str]) -> tuple[torch.Tensor, list[str]]:
    """Long[N] class index per label (-1 when absent or unmatched), and the unmatched label texts."""
    lookup = class_lookup(class_names)
    ids, unmatched = [], set()
    for label in labels:
        if label is None or label == "":
            ids.append(-1)
        elif label in lookup:
            ids.append(lookup[label])
        else:
            ids.append(-1)
            unmatched.add(label)
    return torch.tensor(ids, dtype=torch.long), sorted(unmatched)


# ---------------------------------------------------------------------------------
# Iterating a dataset
# ---------------------------------------------------------------------------------


def make_loader(dataset, *, batch_size: int, num_workers: int, device, collate_fn):
    """A DataLoader in dataset order; pinned memory when copying to a GPU."""
    from torch.utils.data import DataLoader

    device = torch.device(device)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_fn,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )


def extract_batches(
    extractor: Extractor,
    batches: Iterable[dict],
    label_classes: torch.Tensor | None = None,
    *,
    total: int | None = None,
    progress: bool = True,
    first_index: int = 0,
) -> Iterator[tuple[dict, BatchSummary | None]]:
    """Yield ``(batch, summary)`` for each collated batch.

    A batch is ``{"index": Long[B], "image": [B, 3, S, S], "ok": Bool[B], "reason": [str]}``
    (see :func:`pipeline.images.dataset.collate`). Only the good images are run through the
    model; ``summary`` rows follow ``batch["index"][batch["ok"]]`` and it is ``None``
    when the whole batch was bad. ``label_classes`` is indexed by ``batch["index"]``;
    ``first_index + batch["index"]`` is an image's index in the listing (the shard's start).
    """
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="extract", unit="img")
    try:
        for batch in batches:
            ok = batch["ok"].bool()
            summary = None
            if ok.any():
                labels = None
                if label_classes is not None:
                    labels = label_classes[batch["index"][ok]]
                listing = (batch["index"][ok] + int(first_index)).tolist()
                summary = extractor(batch["image"][ok], labels, listing)
            if bar is not None:
                bar.update(len(ok))
            yield batch, summary
    finally:
        if bar is not None:
            bar.close()
