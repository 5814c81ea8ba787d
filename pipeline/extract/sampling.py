"""Sampling activation vectors for the activation atlas, inside the extraction pass.

The activation atlas (Carter et al., Distill 2019; :mod:`pipeline.atlas`) lays out
activation *vectors*: the ``C`` channels of a layer at one spatial position of one image.
Reading every position of every image would be a second pass over the dataset and far
too many vectors, so the extraction pass keeps a few positions of each image as it goes.

Which positions. Image ``i`` of the run's listing (``i`` = its index in the listing,
``images.json``: shard start + offset, so not the kept-row index, and bad images are
skipped without moving the others) keeps ``n`` distinct positions of the ``H x W`` map,
chosen by ``numpy.random.default_rng([seed, i]).choice(H * W, n, replace=False)`` and
sorted (row-major). The choice depends on the seed, the image's listing index and the
map's size only: the same however the listing is split into shards, and the same for
every layer of one size. ``n = min(positions_per_image, max(1, max_vectors // images),
H * W)`` where ``images`` is the number of images in the listing: a total cap of about
``max_vectors`` vectors per layer (at least one position per image).

What is kept per sampled position (:meth:`PositionSampler.sample`): the activation vector
(float32 ``[C]``), the image's row in the batch, ``y``, ``x``, and the position's
attribution to the image's predicted class: gradient x activation at ``(y, x)`` summed
over channels (NaN when the extraction computes no attribution). The shard writer
(:mod:`pipeline.store.activations`) turns batch rows into the shard's kept rows.

Nothing here needs the extracted layers: an atlas layer that is not among
``extract.layers`` is tapped by the extraction for sampling only (no summaries).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from pipeline.settings import StageSettings

SAMPLED = ("vectors", "row", "y", "x", "attribution")  # what one batch's sample holds, per layer


@dataclasses.dataclass(frozen=True)
class AtlasSampling(StageSettings):
    """What the extraction samples for the atlas: the ``extract_shard`` job's ``atlas``
    parameters (the atlas layers resolved to names, and the ``atlas:`` section's
    sampling keys, whose defaults these are)."""

    layers: tuple[str, ...] = ()
    positions_per_image: int = 16
    max_vectors: int = 100000
    seed: int = 0

    def per_image(self, images: int) -> int:
        """Positions each image keeps in a listing of ``images`` images (before the map's
        own size caps it): ``min(positions_per_image, max(1, max_vectors // images))``."""
        if int(self.positions_per_image) < 1 or int(self.max_vectors) < 1:
            raise ValueError(
                f"atlas sampling needs positions_per_image >= 1 and max_vectors >= 1; got "
                f"{self.positions_per_image} and {self.max_vectors}"
            )
        return min(int(self.positions_per_image), max(1, int(self.max_vectors) // max(1, int(images))))

    def sampler(self, layers: Sequence[str], images: int) -> PositionSampler:
        """The sampler of a listing of ``images`` images; ``layers``: :attr:`layers` resolved
        to canonical names (the model's)."""
        return PositionSampler(layers=tuple(layers), per_image=self.per_image(images), seed=int(self.seed))


@dataclasses.dataclass(frozen=True)
class PositionSampler:
    """Chooses and gathers the sampled positions of each image (see the module doc)."""

    layers: tuple[str, ...]
    per_image: int
    seed: int

    def recorded(self) -> dict:
        """What decides a shard's samples (part of its hashed settings: shards sampled
        otherwise never merge)."""
        return {"layers": list(self.layers), "per_image": int(self.per_image), "seed": int(self.seed)}

    def positions(self, listing_index: int, height: int, width: int) -> np.ndarray:
        """int64 ``[n]``: the flat positions (``y * width + x``, ascending) image
        ``listing_index`` keeps on an ``height x width`` map."""
        cells = int(height) * int(width)
        rng = np.random.default_rng([int(self.seed), int(listing_index)])
        return np.sort(rng.choice(cells, size=min(self.per_image, cells), replace=False)).astype(np.int64)

    def sample(self, activations, spatial_attribution, listing_indices: Sequence[int]) -> dict:
        """The samples of one layer on one batch, as NumPy arrays (see ``SAMPLED``).

        ``activations``: Tensor ``[N, C, H, W]``; ``spatial_attribution``: Tensor ``[N, H, W]``
        (gradient x activation summed over channels) or None; ``listing_indices``: each
        image's index in the listing. ``row`` is the image's index in the batch.
        """
        import torch

        n, c, h, w = activations.shape
        if len(listing_indices) != n:
            raise ValueError(f"{len(listing_indices)} listing indices for a batch of {n} images")
        if max(h, w) > np.iinfo(np.int16).max:
            raise ValueError(f"feature map {h}x{w} too large for int16 positions")
        flat = [self.positions(i, h, w) for i in listing_indices]
        rows = np.repeat(np.arange(n, dtype=np.int64), [len(f) for f in flat])
        flat = np.concatenate(flat) if flat else np.zeros(0, np.int64)
        ys, xs = flat // w, flat % w
        index = (torch.from_numpy(rows), torch.from_numpy(ys), torch.from_numpy(xs))
        device = activations.device
        index = tuple(t.to(device) for t in index)
        vectors = activations.detach()[index[0], :, index[1], index[2]]  # [n, C]
        if spatial_attribution is None:
            attribution = np.full(len(rows), np.nan, np.float32)
        else:
            attribution = spatial_attribution.detach()[index].float().cpu().numpy()
        return {
            "vectors": vectors.float().cpu().numpy().reshape(len(rows), c),
            "row": rows,
            "y": ys.astype(np.int16),
            "x": xs.astype(np.int16),
            "attribution": attribution.astype(np.float32),
        }
