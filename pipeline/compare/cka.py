"""Linear CKA between every layer of one model and every layer of another, in bounded memory.

Centred kernel alignment (Kornblith et al., ICML 2019) compares two representations of the
same ``n`` images, ``X`` ``[n, C_x]`` and ``Y`` ``[n, C_y]``, through their Gram matrices
``K = X Xᵀ`` and ``L = Y Yᵀ`` (linear kernels)::

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))

It is 1 for representations equal up to rotation and isotropic scaling, and does not care
how many channels either has. The Gram matrices are ``[n, n]``: over a whole dataset that
does not fit in memory. Nguyen, Raghu and Kornblith (ICLR 2021, "Do wide and deep networks
learn the same things?", section 3.1) average an *unbiased* HSIC estimator (Song et al.,
JMLR 2012) over minibatches of ``n`` images instead::

    CKA_minibatch = mean_b HSIC_1(K_b, L_b) / sqrt(mean_b HSIC_1(K_b, K_b) · mean_b HSIC_1(L_b, L_b))

    HSIC_1(K, L) = [tr(K̃ L̃) + (1ᵀK̃1)(1ᵀL̃1) / ((n-1)(n-2)) - 2/(n-2) · 1ᵀK̃ L̃ 1] / (n(n-3))

where ``K̃`` is ``K`` with its diagonal set to zero. Each minibatch's estimate is unbiased,
so their mean converges on the full dataset's value as batches accumulate, unlike the
usual (biased) estimator, whose minibatch mean depends on the batch size. Memory is
``[n, n]`` per layer, whatever the dataset's size; the batches must be random samples of
the dataset (the caller draws them from a seeded permutation of the images).

All the layer pairs of one batch come from one matrix product: with every layer's ``K̃``
flattened into a row of ``F`` ``[layers, n²]``, ``tr(K̃_a K̃_b) = (F_a F_bᵀ)[a, b]`` (the
Gram matrices are symmetric). NumPy only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

SMALLEST_BATCH = 4  # HSIC_1 divides by n - 3


@dataclasses.dataclass(frozen=True)
class GramBatch:
    """One minibatch of one model, every layer at once (``L`` layers, ``n`` images):
    ``flat`` ``[L, n²]`` each layer's ``K̃`` flattened, ``rows`` ``[L, n]`` its row sums
    ``K̃1``, ``totals`` ``[L]`` their sums ``1ᵀK̃1``."""

    flat: np.ndarray
    rows: np.ndarray
    totals: np.ndarray

    @property
    def images(self) -> int:
        return self.rows.shape[1]


def gram_batch(features: Sequence[np.ndarray]) -> GramBatch:
    """The :class:`GramBatch` of one minibatch: ``features`` holds each layer's ``[n, C]``
    activations of the same ``n`` images (float64 inside: the sums cancel)."""
    counts = {len(x) for x in features}
    if len(counts) != 1:
        raise ValueError(f"every layer of a minibatch must have the same images; got {sorted(counts)} rows")
    n = counts.pop()
    if n < SMALLEST_BATCH:
        raise ValueError(f"the unbiased HSIC estimator needs at least {SMALLEST_BATCH} images, got {n}")
    grams = []
    for x in features:
        x = np.asarray(x, np.float64).reshape(n, -1)
        gram = x @ x.T
        np.fill_diagonal(gram, 0.0)
        grams.append(gram)
    grams = np.stack(grams)
    rows = grams.sum(axis=2)
    return GramBatch(grams.reshape(len(grams), -1), rows, rows.sum(axis=1))


def unbiased_hsic(a: GramBatch, b: GramBatch) -> np.ndarray:
    """``[L_a, L_b]``: ``HSIC_1`` between every layer of ``a`` and every layer of ``b``
    (the same images in the same order)."""
    n = a.images
    if b.images != n:
        raise ValueError(f"the two batches must hold the same images; got {n} and {b.images}")
    trace = a.flat @ b.flat.T
    totals = np.outer(a.totals, b.totals) / ((n - 1) * (n - 2))
    cross = a.rows @ b.rows.T
    return (trace + totals - 2.0 / (n - 2) * cross) / (n * (n - 3))


def self_hsic(a: GramBatch) -> np.ndarray:
    """``[L]``: ``HSIC_1(K_l, K_l)`` of each layer (the diagonal of ``unbiased_hsic(a, a)``)."""
    n = a.images
    trace = np.einsum("ij,ij->i", a.flat, a.flat)
    cross = np.einsum("ij,ij->i", a.rows, a.rows)
    return (trace + a.totals**2 / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * cross) / (n * (n - 3))


class MinibatchCKA:
    """Accumulates the minibatch CKA of every layer of model A against every layer of model B.

    >>> cka = MinibatchCKA()
    >>> for batch_a, batch_b in batches:            # the same images, each a list of [n, C]
    ...     cka.update(gram_batch(batch_a), gram_batch(batch_b))
    >>> cka.result()                                  # [L_a, L_b]
    """

    def __init__(self):
        self.cross: np.ndarray | None = None
        self.self_a: np.ndarray | None = None
        self.self_b: np.ndarray | None = None
        self.batches = 0

    def update(self, a: GramBatch, b: GramBatch) -> None:
        cross, self_a, self_b = unbiased_hsic(a, b), self_hsic(a), self_hsic(b)
        if self.cross is None:
            self.cross, self.self_a, self.self_b = cross, self_a, self_b
        else:
            self.cross += cross
            self.self_a += self_a
            self.self_b += self_b
        self.batches += 1

    def result(self) -> np.ndarray:
        """``[L_a, L_b]`` float64: the CKA of each layer pair; NaN where a layer is constant
        over the images (its HSIC with itself is 0: no similarity is defined)."""
        if self.cross is None:
            raise ValueError("MinibatchCKA: no batch was added")
        denominator = np.sqrt(np.outer(np.clip(self.self_a, 0, None), np.clip(self.self_b, 0, None)))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denominator > 0, self.cross / denominator, np.nan)


def linear_cka(x: np.ndarray, y: np.ndarray, batch_size: int | None = None, seed: int = 0) -> float:
    """CKA of two representations ``[N, C_x]`` and ``[N, C_y]`` of the same images held in
    memory: the full unbiased estimator (one batch of all ``N``), or the minibatch one over a
    seeded permutation in batches of ``batch_size`` (a last batch under 4 images is left out).
    For tests and small data; the compare job streams its batches from the stores."""
    x, y = np.asarray(x), np.asarray(y)
    cka = MinibatchCKA()
    for rows in minibatches(len(x), batch_size or len(x), seed if batch_size else None):
        cka.update(gram_batch([x[rows]]), gram_batch([y[rows]]))
    return float(cka.result()[0, 0])


def minibatches(images: int, batch_size: int, seed: int | None = 0) -> list[np.ndarray]:
    """Row indices of each minibatch: a seeded random permutation of ``range(images)`` cut
    into batches of ``batch_size`` (``seed=None``: in order), each sorted (stores read sorted
    rows fastest; the estimator does not care about order within a batch). A last batch of
    fewer than 4 images is dropped (the estimator needs 4)."""
    if batch_size < SMALLEST_BATCH:
        raise ValueError(f"compare.batch_size must be at least {SMALLEST_BATCH}, got {batch_size}")
    order = np.arange(images) if seed is None else np.random.default_rng(seed).permutation(images)
    batches = [np.sort(order[i : i + batch_size]) for i in range(0, images, batch_size)]
    return [rows for rows in batches if len(rows) >= SMALLEST_BATCH]
