"""Neuron groups: NMF of positions x channels matrices (pipeline/blocks/factorize.py)."""

import numpy as np
import pytest
import torch

from pipeline.blocks import factorize as fz
from pipeline.model import load_model

# A matrix that is exactly a sum of k non-negative rank-one parts must be
# reconstructed to within this relative Frobenius error by k groups.
EXACT_TOLERANCE = 1e-2


def _low_rank(positions=49, channels=20, k=3, seed=0):
    rng = np.random.default_rng(seed)
    maps = rng.random((positions, k)) * (rng.random((positions, k)) > 0.3)
    directions = rng.random((k, channels)) * (rng.random((k, channels)) > 0.5)
    return maps @ directions


def test_groups_reconstruct_a_low_rank_matrix_with_nonnegative_maps():
    x = _low_rank()
    groups = fz.factorize(x, 3)
    assert groups.maps.shape == (3, 49) and groups.directions.shape == (3, 20)
    assert (groups.maps >= 0).all() and (groups.directions >= 0).all()
    error = np.linalg.norm(groups.reconstruction() - x) / np.linalg.norm(x)
    assert error < EXACT_TOLERANCE
    assert groups.relative_error == pytest.approx(error, abs=1e-5)
    np.testing.assert_allclose(np.linalg.norm(groups.directions, axis=1), 1.0, rtol=1e-5)
    # Largest group first.
    assert list(groups.maps.sum(axis=1)) == sorted(groups.maps.sum(axis=1), reverse=True)


def test_groups_reconstruct_a_tiny_models_activations():
    model = load_model("tests.helpers.models:tiny_blocks_net", weights="random")
    acts, _ = _tiny_acts(model)
    x = acts.reshape(acts.shape[0], -1).T.numpy()  # [64 positions, 4 channels] >= 0
    full = fz.factorize(x, 4)
    assert (full.maps >= 0).all()
    # As many groups as channels can reconstruct (non-negative) activations exactly.
    assert np.linalg.norm(full.reconstruction() - x) / np.linalg.norm(x) < EXACT_TOLERANCE
    fewer = fz.factorize(x, 2)
    assert fewer.k == 2 and (fewer.maps >= 0).all()
    assert full.relative_error <= fewer.relative_error + 1e-6
    assert fewer.relative_error < 0.5


def _tiny_acts(model):
    from pipeline.model.hooks import LayerTap

    image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    acts, _ = LayerTap(model.net, model.modules_for(model.resolve_layers(["features1"])))(
        model.normalize(image)
    )
    return acts["features1"][0].detach(), image


def test_signed_targets_split_into_positive_and_negative_parts():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 5))
    groups = fz.factorize(x, 10, target="attributions")
    assert groups.weights.shape == (10, 10)  # [k, 2C]: positive then negative half
    assert (groups.maps >= 0).all() and (groups.weights >= 0).all()
    assert (groups.directions < 0).any()  # directions are signed
    assert np.linalg.norm(groups.reconstruction() - x) / np.linalg.norm(x) < 0.05


def test_clipped_negative_activations_are_reported():
    x = np.array([[1.0, -1.0], [2.0, 0.0]])
    groups = fz.factorize(x, 1)
    assert groups.clipped == pytest.approx(1 / np.sqrt(6))


def test_groups_are_clamped_to_the_matrix_rank_bound_and_zero_matrix_is_fine():
    assert fz.factorize(np.ones((3, 8)), 6).k == 3
    zero = fz.factorize(np.zeros((4, 3)), 2)
    assert (zero.maps == 0).all() and zero.relative_error == 0.0


@pytest.mark.parametrize(
    "matrix, kwargs, message",
    [
        (np.ones((3, 3)), {"target": "logits"}, "factorize target 'logits' unknown"),
        (np.array([[1.0, np.nan]]), {}, "NaN"),
        (np.ones(3), {}, "matrix"),
        (np.ones((3, 3)), {"k": 0}, "number of groups"),
    ],
)
def test_bad_input_is_named(matrix, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fz.factorize(matrix, **kwargs)


def test_group_attribution_splits_the_total_and_equals_gradient_times_group_activation():
    x = _low_rank(k=2, seed=4) + 0.01  # every entry reconstructed
    groups = fz.factorize(x, 2)
    rng = np.random.default_rng(5)
    grad = rng.normal(size=x.shape)
    attribution = grad * x
    per_group = fz.group_attribution(groups, attribution)
    assert per_group.shape == (2,)
    assert per_group.sum() == pytest.approx(attribution.sum(), rel=1e-5)
    # With an (almost) exact factorization the share rule is grad . (group's part of x).
    parts = [np.outer(groups.maps[g], groups.directions[g]) for g in range(2)]
    direct = np.array([(grad * part).sum() for part in parts])
    np.testing.assert_allclose(per_group, direct, rtol=0.05, atol=0.05 * np.abs(direct).max())
    stacked = fz.group_attribution(groups, np.stack([attribution, -attribution]))
    np.testing.assert_allclose(stacked[:, 1], -per_group, rtol=1e-6)


def test_shared_factorization_gives_corresponding_groups_across_layers():
    # Two concepts: left half and right half of the image, each with its own channels
    # in layer a (8x8) and in layer b (4x4).
    left = np.zeros((8, 8))
    left[:, :4] = 1.0
    right = 1.0 - left
    a = np.stack([left * 2, left, right * 3, right, left + right * 0.0])  # [5, 8, 8]
    small = lambda m: m.reshape(4, 2, 4, 2).mean(axis=(1, 3))  # noqa: E731
    b = np.stack([small(right), small(left) * 4, small(right) * 2])  # [3, 4, 4]
    shared = fz.factorize_shared({"a": a, "b": b}, 2)
    assert shared["a"].maps.shape == (2, 64) and shared["b"].maps.shape == (2, 16)
    for g in range(2):
        map_a = shared["a"].maps[g].reshape(8, 8)
        map_b = shared["b"].maps[g].reshape(4, 4)
        assert np.corrcoef(small(map_a).ravel(), map_b.ravel())[0, 1] > 0.99
        assert (shared["a"].maps[g] >= 0).all()
    assert shared["a"].relative_error < EXACT_TOLERANCE
    assert shared["b"].relative_error < EXACT_TOLERANCE
    with pytest.raises(ValueError, match="layer 'c'"):
        fz.factorize_shared({"c": np.ones((2, 2))})
