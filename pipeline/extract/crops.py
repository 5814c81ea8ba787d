"""The examples' pictures: thumbnails of their receptive-field boxes and the channel's
activation map over each, in the same geometry (so a page can lay one over the other).

:class:`ExampleCrops` collects what one shard owes the store, the crops of the example
images among its rows, so that each image is decoded (and run through the model) once
however many channels and layers show it, and shards do it in parallel.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pipeline.store.reduction import ExampleMaps, MergedLayer, ShardShare


def crop_square(image, box, size: int, fill: float, *, antialias: bool = True):
    """float ``[K, size, size]``: the box ``(y0, x0, y1, x1)`` of ``image [K, S, S]``.

    A box clipped at the image border is not stretched: it is placed in a square of
    ``fill`` on the side away from the border, where the field left the image.
    """
    import torch
    import torch.nn.functional as F

    y0, x0, y1, x1 = (int(v) for v in box)
    crop = image[:, y0:y1, x0:x1].float()
    h, w = crop.shape[1:]
    side = max(h, w, 1)
    canvas = torch.full((image.shape[0], side, side), float(fill))
    top = side - h if (y0 == 0 and h < side) else 0
    left = side - w if (x0 == 0 and w < side) else 0
    canvas[:, top : top + h, left : left + w] = crop
    return F.interpolate(
        canvas[None],
        size=(size, size),
        mode="bilinear",
        antialias=antialias and side > size,
        align_corners=False,
    )[0]


def crop_thumbnail(image01, box, size: int) -> np.ndarray:
    """uint8 ``[size, size, 3]``: the box of ``image01 [3, S, S]``, grey where it left the image."""
    from pipeline.images.dataset import to_uint8

    return to_uint8(crop_square(image01, box, size, 0.5))


def crop_maps(channel_maps, boxes, input_size: int, size: int) -> np.ndarray:
    """float16 ``[n, size, size]``: map ``i`` of ``channel_maps [n, H, W]`` over box ``i``,
    in the same geometry as :func:`crop_thumbnail` (so it can be laid over the thumbnail).

    The feature map is first spread over the ``input_size`` square (bilinear: each position
    at the centre of its stride), then cut like the image; outside the image reads 0.
    """
    import torch.nn.functional as F

    spread = F.interpolate(
        channel_maps[None].float(), size=(input_size, input_size), mode="bilinear", align_corners=False
    )[0]
    out = [crop_square(spread[i : i + 1], box, size, 0.0)[0] for i, box in enumerate(boxes)]
    return (
        np.stack([m.numpy() for m in out]).astype(np.float16)
        if out
        else np.zeros((0, size, size), np.float16)
    )


class ExampleCrops:
    """The thumbnails and maps of the examples whose image is a row in ``[start, stop)``.

    ``merged[layer]`` is a :class:`~pipeline.store.reduction.MergedLayer` (its tables with
    their boxes, and the plan of its thumbnails). Feed every image of :meth:`rows` to
    :meth:`fill`; :meth:`shares` then gives each layer's
    :class:`~pipeline.store.reduction.ShardShare` with the given histogram counts.
    Without ``map_size``, no maps (and no activations needed).
    """

    def __init__(
        self,
        merged: Mapping[str, MergedLayer],
        start: int,
        stop: int,
        thumbnail_size: int,
        map_size: int | None,
    ):
        self.thumbnail_size, self.map_size = int(thumbnail_size), map_size
        self.thumbnails: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # layer -> (index, pixels)
        self.maps: dict[str, dict[str, ExampleMaps]] = {}
        self.requests: dict[int, list] = {}  # row -> [(layer, table or None, slot, channel, box)]
        for layer, m in merged.items():
            mine = np.flatnonzero((m.crop_rows >= start) & (m.crop_rows < stop))
            size = self.thumbnail_size
            self.thumbnails[layer] = (mine.astype(np.int64), np.zeros((len(mine), size, size, 3), np.uint8))
            for slot, i in enumerate(mine):
                self._ask(int(m.crop_rows[i]), (layer, None, slot, None, m.crop_boxes[i]))
            self.maps[layer] = {}
            if not map_size:
                continue
            for table, examples in m.tables.items():
                channels, ranks = np.nonzero((examples.row >= start) & (examples.row < stop))
                self.maps[layer][table] = ExampleMaps(
                    channel=channels.astype(np.int32),
                    rank=ranks.astype(np.int32),
                    map=np.zeros((len(channels), map_size, map_size), np.float16),
                )
                for slot, (c, j) in enumerate(zip(channels, ranks)):
                    self._ask(int(examples.row[c, j]), (layer, table, slot, int(c), examples.box[c, j]))

    def _ask(self, row: int, request: tuple) -> None:
        self.requests.setdefault(row, []).append(request)

    def rows(self) -> list[int]:
        """The image rows to decode, ascending."""
        return sorted(self.requests)

    @property
    def needs_activations(self) -> bool:
        return any(r[3] is not None for requests in self.requests.values() for r in requests)

    def fill(self, row: int, image01, acts: Mapping[str, object] | None = None) -> None:
        """Crop image ``row`` (``[3, S, S]`` in [0, 1]) and, if asked for maps, its
        activations ``{layer: [C, H, W]}``."""
        maps: dict[str, list] = {}
        for layer, table, slot, channel, box in self.requests.get(row, ()):
            if channel is None:
                self.thumbnails[layer][1][slot] = crop_thumbnail(image01, box, self.thumbnail_size)
            else:
                maps.setdefault(layer, []).append((table, slot, channel, box))
        for layer, wanted in maps.items():
            channels, boxes = [w[2] for w in wanted], [w[3] for w in wanted]
            cropped = crop_maps(acts[layer][channels], boxes, image01.shape[-1], self.map_size)
            for (table, slot, _, _), m in zip(wanted, cropped):
                self.maps[layer][table].map[slot] = m

    def shares(self, hist_counts: Mapping[str, np.ndarray]) -> dict[str, ShardShare]:
        """Each layer's share of the shard, with its histogram counts ``hist_counts[layer]``."""
        return {
            layer: ShardShare(hist_counts[layer], index, pixels, self.maps[layer])
            for layer, (index, pixels) in self.thumbnails.items()
        }
