"""Neuron groups: non-negative matrix factorization of one image's layer (scikit-learn).

The Building Blocks article groups the channels of a layer by factorizing the
``positions x channels`` matrix ``X`` of one image into ``k`` groups::

    X  ~=  W @ H        W: [P, k] >= 0   (each group's spatial map)
                        H: [k, C] >= 0   (each group's channel direction)

Each row of ``H`` is scaled to unit L2 norm (and ``W`` inversely), so a map value
is "how much of this unit direction is present here", in the units of ``X``.

What is factorized (``target``)
-------------------------------
``"activations"``
    The layer's activations (non-negative after a ReLU-type layer; any negative
    values are clipped, and :class:`Groups` reports how much was clipped).
``"attributions"`` / ``"gradients"``
    These are signed. NMF needs non-negative data, so the matrix is split into its
    positive and negative parts side by side, ``[max(X, 0), max(-X, 0)]`` (``[P, 2C]``),
    and a group's direction is its positive half minus its negative half. Maps stay
    non-negative.

Shared across layers
--------------------
:func:`factorize_shared` makes groups that correspond between layers: each layer's
matrix is average-pooled to the coarsest grid among them, divided by its Frobenius
norm (so that no layer dominates), and the layers' channels are concatenated into
one ``[P, C_1 + C_2 + ...]`` matrix that shares one ``W``. Each layer's slice of
``H`` is its groups' channel directions; its full-resolution maps are then solved
with those directions held fixed (non-negative least squares, ``update_H=False``).

Group attribution
-----------------
:func:`group_attribution` splits a layer's attribution ``A [P, C]`` between the
groups in proportion to each group's share of the reconstruction at that entry,
``W[p, g] |H[g, c]| / sum_g' W[p, g'] |H[g', c]|``. For an activation factorization
that reconstructs exactly this is the gradient times the group's part of the
activation (``sum_pc grad[p, c] W[p, g] H[g, c]``), and the groups' attributions always
add up to the total attribution of the entries the groups reconstruct at all.

Everything here is NumPy in, NumPy out (float32); nothing touches files or torch.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Mapping

import numpy as np

log = logging.getLogger(__name__)

TARGETS = ("activations", "attributions", "gradients")
SIGNED_TARGETS = ("attributions", "gradients")


@dataclasses.dataclass
class Groups:
    """A factorization of one layer's ``[P, C]`` matrix into ``k`` groups.

    ``maps`` ``[k, P]`` >= 0, ``directions`` ``[k, C]`` (unit L2 rows; signed for a
    signed target), ``weights`` ``[k, C']`` the non-negative factor actually fitted
    (``C' = C``, or ``2C`` for a signed target: positive half, then negative half).
    ``relative_error`` is ``||X' - maps.T @ weights|| / ||X'||`` on the fitted
    (non-negative) matrix ``X'``; ``clipped`` is the fraction of ``||X||`` that was
    negative and dropped (activations only).
    """

    maps: np.ndarray
    directions: np.ndarray
    weights: np.ndarray
    relative_error: float
    clipped: float = 0.0

    @property
    def k(self) -> int:
        return int(self.maps.shape[0])

    def reconstruction(self) -> np.ndarray:
        """``[P, C]``: the groups' reconstruction of the factorized matrix (signed target: pos - neg)."""
        return (self.maps.T @ self.directions).astype(np.float32)


def _check_matrix(matrix, name: str = "matrix") -> np.ndarray:
    x = np.asarray(matrix, dtype=np.float64)
    if x.ndim != 2 or min(x.shape) < 1:
        raise ValueError(f"{name} must be a non-empty [positions, channels] matrix, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite values; cannot factorize")
    return x


def _nonnegative(x: np.ndarray, signed: bool) -> tuple[np.ndarray, float]:
    """The matrix NMF fits, and the fraction of the norm dropped by clipping."""
    if signed:
        return np.concatenate([np.maximum(x, 0), np.maximum(-x, 0)], axis=1), 0.0
    norm = np.linalg.norm(x)
    clipped = float(np.linalg.norm(np.minimum(x, 0)) / norm) if norm > 0 else 0.0
    return np.maximum(x, 0), clipped


def _fit(xp: np.ndarray, k: int, seed: int, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """``W [P, k]``, ``H [k, C']`` of the non-negative ``xp``; zeros for an all-zero matrix."""
    if not xp.any():
        return np.zeros((xp.shape[0], k)), np.zeros((k, xp.shape[1]))
    from sklearn.decomposition import NMF

    # nndsvda is deterministic and needs k <= min(P, C); callers clamp k to that.
    model = NMF(n_components=k, init="nndsvda", solver="cd", max_iter=max_iter, tol=1e-5, random_state=seed)
    with warnings.catch_warnings():
        # Not converging within max_iter is normal for real activations; the
        # stored relative error says how good the fit is.
        warnings.filterwarnings("ignore", message=".*Maximum number of iterations.*")
        w = model.fit_transform(xp)
    return w, model.components_


def _signed_directions(h: np.ndarray, channels: int, signed: bool) -> np.ndarray:
    return h[:, :channels] - h[:, channels:] if signed else h


def _order_by_size(w: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Largest group first, so that group 0 is the most present concept on every run.
    order = np.argsort(-w.sum(axis=0), kind="stable")
    return w[:, order], h[order]


def clamp_groups(k: int, positions: int, channels: int) -> int:
    """The number of groups that can be fitted: at most ``min(P, C)``."""
    if k < 1:
        raise ValueError(f"number of groups must be >= 1, got {k}")
    return max(1, min(int(k), int(positions), int(channels)))


def factorize(
    matrix, k: int = 6, *, target: str = "activations", seed: int = 0, max_iter: int = 500
) -> Groups:
    """NMF of one ``[P, C]`` matrix into ``min(k, P, C)`` groups (see the module doc).

    Groups come largest first (by total map mass).
    """
    if target not in TARGETS:
        raise ValueError(f"factorize target {target!r} unknown; use one of {', '.join(TARGETS)}")
    x = _check_matrix(matrix)
    signed = target in SIGNED_TARGETS
    xp, clipped = _nonnegative(x, signed)
    k = clamp_groups(k, *xp.shape)
    w, h = _fit(xp, k, seed, max_iter)
    return _make_groups(xp, w, h, x.shape[1], signed, clipped, sort=True)


def _make_groups(xp, w, h, channels: int, signed: bool, clipped: float, *, sort: bool) -> Groups:
    if sort:
        w, h = _order_by_size(w, h)
    error, total = np.linalg.norm(xp - w @ h), np.linalg.norm(xp)
    directions = _signed_directions(h, channels, signed)
    # Unit directions in the original (signed) channel space; maps and the fitted
    # factor are rescaled by the same norms, so maps.T @ weights still reconstructs xp.
    norms = np.linalg.norm(directions, axis=1)
    safe = np.where(norms > 0, norms, 1.0)
    return Groups(
        maps=(w * safe[None, :]).T.astype(np.float32),
        directions=(directions / safe[:, None]).astype(np.float32),
        weights=(h / safe[:, None]).astype(np.float32),
        relative_error=float(error / total) if total > 0 else 0.0,
        clipped=clipped,
    )


# ---------------------------------------------------------------------------------
# Shared across layers
# ---------------------------------------------------------------------------------


def adaptive_cells(size: int, cells: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive-pool cells along one axis: ``[(start, stop), ...]`` (may overlap)."""
    return [((i * size) // cells, -((-(i + 1) * size) // cells)) for i in range(cells)]


def pool_to_grid(maps: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Average-pool ``[C, H, W]`` to ``[C, gh, gw]`` with PyTorch's adaptive-pool cell edges."""
    c, h, w = maps.shape
    out = np.empty((c, *grid), dtype=np.float64)
    for i, (y0, y1) in enumerate(adaptive_cells(h, grid[0])):
        for j, (x0, x1) in enumerate(adaptive_cells(w, grid[1])):
            out[:, i, j] = maps[:, y0:y1, x0:x1].mean(axis=(1, 2))
    return out


def factorize_shared(
    layers: Mapping[str, np.ndarray],
    k: int = 6,
    *,
    target: str = "activations",
    seed: int = 0,
    max_iter: int = 500,
) -> dict[str, Groups]:
    """One factorization shared by several layers, so that group ``g`` is the same concept in each.

    ``layers`` maps a layer name to its ``[C, H, W]`` map (activations, attributions or
    gradients of one image). Returns each layer's :class:`Groups` with maps at that
    layer's own resolution (``[k, H*W]``); ``relative_error`` is that layer's own fit.
    """
    if target not in TARGETS:
        raise ValueError(f"factorize target {target!r} unknown; use one of {', '.join(TARGETS)}")
    if not layers:
        raise ValueError("factorize_shared needs at least one layer")
    signed = target in SIGNED_TARGETS
    arrays = {name: np.asarray(a, dtype=np.float64) for name, a in layers.items()}
    for name, a in arrays.items():
        if a.ndim != 3:
            raise ValueError(f"layer {name!r}: expected a [C, H, W] map, got shape {a.shape}")
        _check_matrix(a.reshape(a.shape[0], -1), f"layer {name!r}")
    grid = (min(a.shape[1] for a in arrays.values()), min(a.shape[2] for a in arrays.values()))
    blocks, scales, widths = [], {}, {}
    for name, a in arrays.items():
        pooled = pool_to_grid(a, grid).reshape(a.shape[0], -1).T  # [P, C]
        xp, _ = _nonnegative(pooled, signed)
        norm = np.linalg.norm(xp)
        scales[name] = norm if norm > 0 else 1.0
        blocks.append(xp / scales[name])
        widths[name] = xp.shape[1]
    joint = np.concatenate(blocks, axis=1)
    k = clamp_groups(k, *joint.shape)
    _, h = _order_by_size(*_fit(joint, k, seed, max_iter))
    out, start = {}, 0
    for name, a in arrays.items():
        h_layer = h[:, start : start + widths[name]] * scales[name]
        start += widths[name]
        x = a.reshape(a.shape[0], -1).T  # [P_l, C]
        xp, clipped = _nonnegative(x, signed)
        # The shared group order is kept (not each layer's own size order).
        out[name] = _make_groups(
            xp, solve_maps(xp, h_layer), h_layer, a.shape[0], signed, clipped, sort=False
        )
    return out


def solve_maps(xp: np.ndarray, h: np.ndarray, max_iter: int = 500) -> np.ndarray:
    """``W [P, k]`` >= 0 minimising ``||xp - W h||`` with the directions ``h [k, C']`` fixed."""
    if not xp.any() or not h.any():
        return np.zeros((xp.shape[0], h.shape[0]))
    from sklearn.decomposition import non_negative_factorization

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Maximum number of iterations.*")
        w, _, _ = non_negative_factorization(
            xp,
            H=h,
            n_components=h.shape[0],
            init="custom",
            update_H=False,
            solver="cd",
            max_iter=max_iter,
            tol=1e-6,
        )
    return w


# ---------------------------------------------------------------------------------
# Attribution of groups
# ---------------------------------------------------------------------------------


def group_shares(groups: Groups) -> np.ndarray:
    """``[k, P, C]``: each group's share of every entry of the factorized matrix,
    ``W[p, g] |H[g, c]| / sum_g' W[p, g'] |H[g', c]|`` (0 where no group reconstructs it)."""
    c = groups.directions.shape[1]
    h = groups.weights.astype(np.float64)
    magnitude = h[:, :c] + h[:, c:] if h.shape[1] == 2 * c else h  # [k, C] >= 0
    mass = groups.maps.astype(np.float64)[:, :, None] * magnitude[:, None, :]  # [k, P, C]
    total = mass.sum(axis=0)
    return np.divide(mass, total[None], out=np.zeros_like(mass), where=total[None] > 0)


def group_attribution(groups: Groups, attribution) -> np.ndarray:
    """``[k]`` (or ``[k, T]`` for a stack ``[T, P, C]``): each group's share of ``attribution [P, C]``.

    Entries that no group reconstructs (share 0 everywhere) are left out, so the sum
    over groups is the total attribution of the entries the groups cover.
    """
    a = np.asarray(attribution, dtype=np.float64)
    stacked = a.ndim == 3
    a = a if stacked else a[None]
    share = group_shares(groups)
    if a.shape[1:] != share.shape[1:]:
        raise ValueError(
            f"attribution shape {a.shape[1:]} does not match groups "
            f"[{share.shape[1]} positions, {share.shape[2]} channels]"
        )
    out = np.einsum("kpc,tpc->kt", share, a).astype(np.float32)
    return out if stacked else out[:, 0]


def reorder(groups: Groups, order) -> Groups:
    """The same groups in the order ``order`` (a permutation of ``range(k)``)."""
    order = np.asarray(order, dtype=np.int64)
    return dataclasses.replace(
        groups, maps=groups.maps[order], directions=groups.directions[order], weights=groups.weights[order]
    )
