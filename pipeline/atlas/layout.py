"""An activation atlas's layout: UMAP, the grids, and what each cell holds (NumPy in, arrays out).

Definitions (Carter et al., "Activation Atlas", Distill 2019), for one layer and its ``S``
sampled activation vectors ``v_s`` (``C`` channels each; :mod:`pipeline.extract.sampling`):

**Layout.** UMAP (metric cosine, ``n_neighbors``, ``min_dist``, ``random_state = seed``,
starting from ``init``: ``spectral``, UMAP's own, or ``pca``, the first two principal
components of the unit-length vectors) maps the vectors to the plane; each axis is then
scaled to ``[MARGIN, 1 - MARGIN]`` (min-max, a flat axis to 0.5), giving ``xy_s`` in
``[0, 1]^2``, x the column and y the row. Tiny samples never fail: below ``n_neighbors + 1``
vectors UMAP runs with ``n_neighbors = S - 1`` (at least 2), and fewer than 4 vectors are
placed on a horizontal line in sample order.

**Cells.** At a level of side ``g`` the vector ``s`` falls in cell ``(i, j) = (min(floor(
y_s g), g - 1), min(floor(x_s g), g - 1))``. A cell holding at least ``min_count`` vectors is
kept; kept cells are listed in row-major order (``i``, then ``j``). Per kept cell:

* ``count``: its vectors; ``mean``: their mean ``m`` (float32; summed in float64);
* ``class_attribution[k]``: the attribution of ``m`` to the logit of class ``k``, from a
  callable (:func:`pipeline.atlas.attribution.mean_vector_attribution`: ``m`` tiled over
  the layer's ``H x W`` positions and fed through the rest of the network; gradient x
  activation summed over the map);
* ``top_classes``: the ``top_classes`` classes of highest attribution, class id ascending
  on ties (-1 / NaN padding past ``K``);
* ``examples``: up to ``examples`` of the cell's vectors nearest its mean by cosine
  similarity (highest first, sample index ascending on ties; a zero vector has similarity
  0), as sample indices.

:func:`example_thumbnails` plans each example's thumbnail: the crop of its position's
receptive field in the model's input crop, one per distinct (image, box).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from pipeline.ranking import top_k_table, top_order
from pipeline.store.atlas import AtlasCells

log = logging.getLogger(__name__)

MARGIN = 0.02  # of the unit square left free on each side of the layout
LINE_BELOW = 4  # fewer vectors than this are placed on a line, not through UMAP
# Below this many vectors the cosine neighbours are found exactly, here, and handed to UMAP
# (UMAP's own threshold for exact neighbours): the same graph, without compiling UMAP's
# neighbour search (about 7 s of a first call in each process).
EXACT_NEIGHBOURS_BELOW = 4096
# UMAP's starting layouts. `spectral` (UMAP's default) embeds each connected component of
# the neighbour graph apart, converting the whole graph once per component: on a million
# vectors it outgrew 24 GB (docs/PERFORMANCE.md, section 11). `pca` costs one PCA.
INITS = ("spectral", "pca")


# ---------------------------------------------------------------------------------
# The 2-D layout
# ---------------------------------------------------------------------------------


def normalise(points: np.ndarray, margin: float = MARGIN) -> np.ndarray:
    """float32 ``[S, 2]``: each column scaled from its [min, max] to ``[margin, 1 - margin]``
    (a column whose values are all equal goes to 0.5)."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    if not len(points):
        return np.zeros((0, 2), np.float32)
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = hi - lo
    scaled = np.where(span > 0, (points - lo) / np.where(span > 0, span, 1.0), 0.5)
    out = margin + scaled * (1.0 - 2.0 * margin)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def umap_parameters(count: int, n_neighbors: int, min_dist: float, seed: int, init: str = "spectral") -> dict:
    """The UMAP parameters as run on ``count`` vectors (``n_neighbors`` lowered for tiny
    samples), as the store records them."""
    if init not in INITS:
        raise ValueError(f"atlas.init must be one of {', '.join(INITS)}; got {init!r}")
    neighbors = int(n_neighbors) if count < LINE_BELOW else max(2, min(int(n_neighbors), count - 1))
    return {
        "metric": "cosine",
        "n_neighbors": neighbors,
        "min_dist": float(min_dist),
        "seed": int(seed),
        "init": init,
    }


def pca_start(vectors: np.ndarray, seed: int) -> np.ndarray:
    """float32 ``[S, 2]``: the first two principal components of the unit-length vectors
    (cosine is the layout's metric, so lengths do not count), scaled to ``[-10, 10]`` as UMAP
    scales its own starts, with seeded jitter of 1e-4 so that equal vectors start apart.
    Degenerate samples (one channel, or every vector alike) start uniformly at random."""
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(seed)
    unit = unit_rows(vectors)
    coords = np.zeros((len(unit), 2))
    if unit.shape[1] >= 2 and len(unit) >= 2 and np.ptp(unit, axis=0).max() > 1e-12:
        coords = PCA(n_components=2, random_state=seed).fit_transform(unit)
    spread = float(np.abs(coords).max()) if coords.size else 0.0
    if not np.isfinite(spread) or spread < 1e-12:
        coords, spread = rng.uniform(-1.0, 1.0, coords.shape), 1.0
    coords = coords * (10.0 / spread) + rng.normal(scale=1e-4, size=coords.shape)
    return coords.astype(np.float32)


def embed(
    vectors: np.ndarray,
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    seed: int = 0,
    init: str = "spectral",
) -> np.ndarray:
    """float32 ``[S, 2]`` in ``[0, 1]^2``: the normalised UMAP layout of ``vectors [S, C]``
    (see the module doc; deterministic for a given seed)."""
    vectors = np.asarray(vectors, np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"activation vectors must be [S, C], got {list(vectors.shape)}")
    bad = int((~np.isfinite(vectors)).any(axis=1).sum())
    if bad:
        raise ValueError(f"{bad} of {len(vectors)} activation vectors are not finite (NaN or infinite)")
    count = len(vectors)
    if count < LINE_BELOW:
        line = np.stack([np.arange(count, dtype=np.float64), np.zeros(count)], axis=1)
        return normalise(line)
    params = umap_parameters(count, n_neighbors, min_dist, seed, init)
    import umap

    neighbours = None
    if count < EXACT_NEIGHBOURS_BELOW:
        indices, distances = cosine_neighbours(vectors, params["n_neighbors"])
        neighbours = (indices, distances, None)
    reducer = umap.UMAP(
        n_neighbors=params["n_neighbors"],
        min_dist=params["min_dist"],
        metric="cosine",
        random_state=params["seed"],
        n_jobs=1,  # what a random_state implies anyway; said here so that UMAP does not warn
        precomputed_knn=neighbours or (None, None, None),
        init=pca_start(vectors, seed) if init == "pca" else "spectral",
    )
    with warnings.catch_warnings():
        # Tiny or degenerate samples make UMAP warn (spectral initialisation, disconnected
        # components) and carry on: the layout is still made; the log says how many vectors.
        warnings.simplefilter("ignore")
        points = reducer.fit_transform(vectors)
    return normalise(points)


def cosine_neighbours(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The exact ``k`` nearest neighbours of each vector by cosine distance, itself first
    (as UMAP's neighbour graph has them): int64 indices and float32 distances ``[S, k]``;
    nearer first, index ascending on ties. A zero vector is at distance 1 from any other."""
    unit = unit_rows(vectors)
    distances = np.clip(1.0 - unit @ unit.T, 0.0, 2.0)
    np.fill_diagonal(distances, -1.0)  # itself first, even beside a duplicate
    order = top_order(distances, k, axis=1, largest=False)
    found = np.take_along_axis(distances, order, axis=1)
    found[:, 0] = 0.0
    return order.astype(np.int64), found.astype(np.float32)


# ---------------------------------------------------------------------------------
# Grids and cells
# ---------------------------------------------------------------------------------


def grid_index(xy: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """int64 ``(i, j)`` of every point at a level of side ``side`` (i from y, j from x)."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    i = np.clip(np.floor(xy[:, 1] * side), 0, side - 1).astype(np.int64)
    j = np.clip(np.floor(xy[:, 0] * side), 0, side - 1).astype(np.int64)
    return i, j


def bin_cells(
    xy: np.ndarray, vectors: np.ndarray, side: int, min_count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """The kept cells of one level: ``cell`` int16 ``[M, 2]``, ``count`` int32 ``[M]``,
    ``mean`` float32 ``[M, C]`` and each cell's sample indices (ascending), row-major."""
    side, vectors = int(side), np.asarray(vectors, np.float32)
    if side < 1 or side > np.iinfo(np.int16).max:
        raise ValueError(f"a level's side must be 1-{np.iinfo(np.int16).max}, got {side}")
    i, j = grid_index(xy, side)
    keys = i * side + j
    order = np.argsort(keys, kind="stable")
    unique, starts, counts = np.unique(keys[order], return_index=True, return_counts=True)
    kept = counts >= int(min_count)
    if not len(unique):
        return (
            np.zeros((0, 2), np.int16),
            np.zeros(0, np.int32),
            np.zeros((0, vectors.shape[1]), np.float32),
            [],
        )
    sums = np.add.reduceat(vectors[order], starts, axis=0, dtype=np.float64)
    means = (sums / counts[:, None])[kept].astype(np.float32)
    members = [m for m, keep in zip(np.split(order, starts[1:]), kept) if keep]
    cell = np.stack([unique[kept] // side, unique[kept] % side], axis=1).astype(np.int16)
    return cell, counts[kept].astype(np.int32), means, members


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """float64 ``vectors`` scaled to unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, np.float64)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def nearest_examples(
    vectors: np.ndarray, members: Sequence[np.ndarray], means: np.ndarray, k: int
) -> np.ndarray:
    """int64 ``[M, k]``: per cell, up to ``k`` of its members (sample indices) nearest its
    mean by cosine similarity, highest first, sample index ascending on ties; -1 padding."""
    out = np.full((len(members), int(k)), -1, np.int64)
    if not k:
        return out
    centres = unit_rows(means)
    for m, indices in enumerate(members):
        indices = np.asarray(indices, np.int64)
        similarity = unit_rows(vectors[indices]) @ centres[m]
        order = top_order(similarity, k, ties=indices)
        out[m, : len(order)] = indices[order]
    return out


def layout_level(
    xy: np.ndarray,
    vectors: np.ndarray,
    side: int,
    class_scores: Callable[[np.ndarray], np.ndarray],
    *,
    min_count: int = 3,
    top_k: int = 5,
    examples: int = 4,
) -> AtlasCells:
    """One zoom level (see the module doc). ``class_scores(means float32 [M, C])`` returns
    each mean vector's attribution to every class, ``[M, K]``."""
    cell, count, mean, members = bin_cells(xy, vectors, side, min_count)
    scores = np.asarray(class_scores(mean), np.float32)
    if scores.ndim != 2 or len(scores) != len(mean):
        raise ValueError(f"class scores for {len(mean)} cells must be [M, K]; got {list(scores.shape)}")
    # Always ``top_k`` columns (the store's table is that wide), -1 / NaN past the classes.
    ids, values = top_k_table(scores, top_k, width=top_k)
    return AtlasCells(
        side=int(side),
        min_count=int(min_count),
        cell=cell,
        count=count,
        mean=mean,
        class_attribution=scores.astype(np.float16),
        top_classes=ids,
        top_scores=values,
        examples=nearest_examples(vectors, members, mean, examples),
    )


def layout_levels(
    xy: np.ndarray,
    vectors: np.ndarray,
    sides: Sequence[int],
    class_scores: Callable[[np.ndarray], np.ndarray],
    *,
    min_count: int = 3,
    top_k: int = 5,
    examples: int = 4,
) -> list[AtlasCells]:
    """:func:`layout_level` for each side of ``sides``, coarsest first."""
    levels = sorted({int(side) for side in sides})
    return [
        layout_level(xy, vectors, side, class_scores, min_count=min_count, top_k=top_k, examples=examples)
        for side in levels
    ]


# ---------------------------------------------------------------------------------
# The examples' thumbnails
# ---------------------------------------------------------------------------------


def example_thumbnails(
    rows: np.ndarray, ys: np.ndarray, xs: np.ndarray, boxes: np.ndarray, levels: Sequence[AtlasCells]
) -> tuple[np.ndarray, list[tuple[int, tuple[int, int, int, int]]]]:
    """Which thumbnails to cut: int32 ``[S]`` index of each sample's thumbnail (-1 for
    samples that are no cell's example) and the distinct crops ``(row, (y0, x0, y1, x1))``
    in order of first use (samples ascending). ``boxes`` int ``[H, W, 4]``: the receptive
    field of every position of the layer (:meth:`~pipeline.model.receptive_field.ReceptiveField.boxes`)."""
    index = np.full(len(rows), -1, np.int32)
    wanted = sorted({int(s) for cells in levels for s in np.asarray(cells.examples).ravel() if s >= 0})
    crops: dict[tuple[int, tuple[int, ...]], int] = {}
    for s in wanted:
        key = (int(rows[s]), tuple(int(v) for v in boxes[int(ys[s]), int(xs[s])]))
        index[s] = crops.setdefault(key, len(crops))
    return index, list(crops)
