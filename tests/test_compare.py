"""Comparing models (pipeline/compare/, pipeline/store/compare.py): CKA against brute force,
the minibatch estimator against the full one, unit matching on copies whose answer is known,
and runs over different images refused."""

import itertools
import json

import numpy as np
import pytest
import yaml

from pipeline.cli import main
from pipeline.compare import CompareSettings, run_compare
from pipeline.compare.cka import MinibatchCKA, gram_batch, linear_cka, minibatches
from pipeline.compare.match import best_buddies, chance_level, chance_threshold, correlation, one_to_one
from pipeline.settings import schema_defaults
from pipeline.store.compare import open_comparison
from tests.helpers.stores import per_image_store
from tests.helpers.workflow import REPO

# The minibatch estimator's mean over batches of 128 of 2,000 images stays within this of the
# full (one batch) estimator on the data below; seeds 0-9 measured 0.001-0.008 apart.
MINIBATCH_TOLERANCE = 0.02


# -- CKA -------------------------------------------------------------------------------------


def brute_unbiased_hsic(k, m):
    """Song et al. (2012), Theorem 2: the unbiased HSIC is the U-statistic of order 4 whose
    kernel averages k_tu l_tu + k_tu l_vw - 2 k_tu l_tv over the 24 orderings (t, u, v, w)
    of four distinct images; summed here over every ordered quadruple, by brute force."""
    n = len(k)
    total = 0.0
    for i, j, q, r in itertools.permutations(range(n), 4):
        for t, u, v, w in itertools.permutations((i, j, q, r)):
            total += k[t, u] * m[t, u] + k[t, u] * m[v, w] - 2 * k[t, u] * m[t, v]
    return total / 24 / (n * (n - 1) * (n - 2) * (n - 3))


def test_cka_is_the_brute_force_unbiased_hsic_ratio():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(7, 5))
    k, m = x @ x.T, y @ y.T
    expected = brute_unbiased_hsic(k, m) / np.sqrt(brute_unbiased_hsic(k, k) * brute_unbiased_hsic(m, m))
    assert linear_cka(x, y) == pytest.approx(expected, rel=1e-9)


def test_cka_is_one_for_a_rotated_rescaled_copy_and_symmetric():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 6))
    rotation, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert linear_cka(x, 3.0 * x @ rotation) == pytest.approx(1.0, abs=1e-9)
    y = rng.normal(size=(50, 4))
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), abs=1e-12)


def test_the_minibatch_estimator_agrees_with_the_full_one():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2000, 40))
    y = np.tanh(x @ rng.normal(size=(40, 30))) + 0.5 * rng.normal(size=(2000, 30))
    full = linear_cka(x, y)
    assert 0.3 < full < 0.6  # neither trivially 0 nor 1
    for seed in range(3):
        assert linear_cka(x, y, batch_size=128, seed=seed) == pytest.approx(full, abs=MINIBATCH_TOLERANCE)


def test_every_layer_pair_of_a_batch_is_the_pairwise_estimate():
    rng = np.random.default_rng(3)
    a = [rng.normal(size=(30, c)) for c in (2, 5)]
    b = [rng.normal(size=(30, c)) for c in (3, 4, 6)]
    cka = MinibatchCKA()
    cka.update(gram_batch(a), gram_batch(b))
    expected = [[linear_cka(x, y) for y in b] for x in a]
    np.testing.assert_allclose(cka.result(), expected, atol=1e-12)


def test_minibatches_cover_the_images_once_and_drop_a_tail_under_four():
    batches = minibatches(23, 10, seed=0)
    assert [len(b) for b in batches] == [10, 10]  # the last 3 are dropped
    assert len(set(np.concatenate(batches))) == 20
    assert all((np.diff(b) > 0).all() for b in batches)
    with pytest.raises(ValueError, match="at least 4"):
        minibatches(23, 3)


# -- unit matching on known data -------------------------------------------------------------


def test_correlation_matching_and_buddies_by_hand():
    x = np.array([[1.0, 0.0, 5.0], [2.0, 1.0, 5.0], [3.0, 0.0, 5.0], [4.0, 1.0, 5.0]])
    corr = correlation(x, x)
    assert corr[0, 0] == pytest.approx(1.0) and corr[0, 1] == pytest.approx(2 / np.sqrt(20))
    assert corr[2].tolist() == [0.0, 0.0, 0.0]  # a constant channel matches nothing
    pairs, values = one_to_one(np.array([[0.9, 0.8], [0.85, 0.1]]))
    assert pairs.tolist() == [[0, 1], [1, 0]] and values.tolist() == pytest.approx([0.8, 0.85])
    # Row 0's best is column 0, and row 0 is among column 0's top 1: buddies; row 1's best is
    # column 0 too, but column 0 ranks row 1 second: no buddy with rank 1, one with rank 2.
    corr = np.array([[0.9, 0.1], [0.8, 0.2]])
    assert best_buddies(corr, rank=1)[0].tolist() == [0, -1]
    assert best_buddies(corr, rank=2)[0].tolist() == [0, 0]


def test_the_chance_threshold_lets_few_unrelated_channels_match():
    rng = np.random.default_rng(4)
    a, b = rng.gamma(2, size=(400, 60)), rng.gamma(2, size=(400, 60))
    threshold = chance_threshold([chance_level(a), chance_level(b)], 400, 0.99)
    best = correlation(a, b).max(axis=1)
    assert 0.1 < threshold < 0.35
    assert (best >= threshold).mean() <= 0.05


def _layers(rng, n=160):
    maxima = {"early": rng.gamma(2, size=(n, 6)), "late": rng.gamma(2, size=(n, 12))}
    return {name: {"max": v, "mean": v / 2 + 0.2 * rng.normal(size=v.shape)} for name, v in maxima.items()}


def _compare(tmp_path, first, second, model_b="fake", **settings):
    a = per_image_store(tmp_path / "a", first)
    b = per_image_store(tmp_path / "b", second, model=model_b)
    out = tmp_path / "ab" / "compare.h5"
    run_compare(CompareSettings(batch_size=32, **settings), [a, b], out)
    return out


def test_a_model_compared_with_itself(tmp_path):
    layers = _layers(np.random.default_rng(5))
    with open_comparison(_compare(tmp_path, layers, layers).parent) as store:
        assert store.pairs() == [("a", "b")]
        table = store.cka()
        assert table.same_architecture and list(table.layers_a) == ["early", "late"]
        np.testing.assert_allclose(np.diagonal(table.values), 1.0, atol=1e-6)
        assert store.layer_pairs() == [("early", "early"), ("late", "late")]
        found = store.matches("late", "late")
        assert found.pairs.tolist() == [[c, c] for c in range(12)]
        np.testing.assert_allclose(found.pair_corr, 1.0, atol=1e-6)
        np.testing.assert_allclose(found.self_corr, 1.0, atol=1e-6)
        assert found.best_a[:, 0].tolist() == list(range(12)) == found.buddies_a.tolist()
        assert found.matched_a.all() and found.matched_b.all()


def test_a_copy_with_permuted_channels_is_recovered_exactly(tmp_path):
    layers = _layers(np.random.default_rng(6))
    order = np.random.default_rng(7).permutation(12)
    permuted = {**layers, "late": {q: v[:, order] for q, v in layers["late"].items()}}
    with open_comparison(_compare(tmp_path, layers, permuted, model_b="other")) as store:
        assert not store.cka().same_architecture
        found = store.matches("late", "late")
        # Channel j of the copy is channel order[j] of the original.
        assert found.pairs[:, 1].tolist() == np.argsort(order).tolist()
        assert found.best_b[:, 0].tolist() == order.tolist()
        assert found.buddies_b.tolist() == order.tolist()
        assert found.self_corr is None  # other architectures: channel ids are not aligned


def test_a_copy_with_one_channel_zeroed_reports_it_unmatched(tmp_path):
    layers = _layers(np.random.default_rng(8))
    zeroed = {**layers, "late": {q: v.copy() for q, v in layers["late"].items()}}
    for values in zeroed["late"].values():
        values[:, 4] = 0.0
    with open_comparison(_compare(tmp_path, layers, zeroed)) as store:
        found = store.matches("late", "late")
        assert np.flatnonzero(~found.matched_b).tolist() == [4]
        assert np.flatnonzero(~found.matched_a).tolist() == [4]  # nothing else does what it did
        assert found.self_corr[4] == 0.0 and found.buddies_b[4] == -1
        assert store.matches("late", "late").summary()["matched_b"] == 11


def test_runs_over_different_images_are_refused_naming_both(tmp_path):
    layers = _layers(np.random.default_rng(9))
    a = per_image_store(tmp_path / "lite0", layers)
    ids = [f"img{j:02d}" for j in range(159)] + ["elsewhere"]
    b = per_image_store(tmp_path / "lite1", layers, ids=ids)
    with pytest.raises(
        ValueError,
        match=r"run lite0 \(.*lite0/activations.h5\) and run lite1 \(.*lite1/activations.h5\) are "
        r"over different images: 1 only in lite0 \(img159\), 1 only in lite1 \(elsewhere\)",
    ):
        run_compare(CompareSettings(), [a, b], tmp_path / "out" / "compare.h5")
    assert not (tmp_path / "out" / "compare.h5").exists()


def test_runs_in_another_image_order_are_aligned(tmp_path):
    layers = _layers(np.random.default_rng(10))
    order = np.random.default_rng(11).permutation(160)
    shuffled = {name: {q: v[order] for q, v in qs.items()} for name, qs in layers.items()}
    a = per_image_store(tmp_path / "a", layers)
    b = per_image_store(tmp_path / "b", shuffled, ids=[f"img{j:02d}" for j in order])
    run_compare(CompareSettings(batch_size=32), [a, b], tmp_path / "ab" / "compare.h5")
    with open_comparison(tmp_path / "ab") as store:
        np.testing.assert_allclose(store.matches("early", "early").self_corr, 1.0, atol=1e-6)


def test_the_cli_answers_from_the_store(tmp_path, capsys):
    layers = _layers(np.random.default_rng(12))
    out = _compare(tmp_path, layers, layers)
    assert main(["compare", str(out.parent), "matches", "late", "late", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["summary"]["matched_a"] == 12 and found["channels_a"][0]["best"][0]["channel"] == 0
    assert main(["compare", str(out.parent)]) == 0
    assert "early ~ early" in capsys.readouterr().out
    assert main(["compare", str(out.parent), "matches", "late", "nope"]) == 2
    assert "matched layer pairs: early ~ early, late ~ late" in capsys.readouterr().err


def test_the_settings_defaults_are_the_schemas():
    schema = yaml.safe_load((REPO / "workflow" / "config" / "compare.schema.yaml").read_text())
    assert CompareSettings() == CompareSettings.from_config(schema_defaults(schema, "compare"))


def test_the_shipped_compare_configs_validate_and_share_their_dataset():
    from snakemake.utils import validate

    config_dir = REPO / "workflow" / "config"
    compare = yaml.safe_load((config_dir / "compare.yaml").read_text())
    validate(compare, str(config_dir / "compare.schema.yaml"))
    members = [yaml.safe_load((REPO / path).read_text()) for path in compare["compare"]["runs"]]
    for member in members:
        validate(member, str(config_dir / "schema.yaml"))
    assert [m["model"]["name"] for m in members] == ["efficientnet_lite0", "efficientnet_lite1"]
    assert members[0]["dataset"] == members[1]["dataset"]


def test_named_layer_pairs_are_kept_in_execution_order_and_checked(tmp_path):
    rng = np.random.default_rng(13)
    layers = {
        name: {"max": v, "mean": v}
        for name, v in (("z1", rng.gamma(2, size=(40, 3))), ("a2", rng.gamma(2, size=(40, 4))))
    }
    with open_comparison(
        _compare(tmp_path, layers, layers, layer_pairs=[["z1", "a2"], ["z1", "z1"]])
    ) as store:
        assert store.layer_pairs() == [("z1", "z1"), ("z1", "a2")]
        assert list(store.cka().layers_a) == ["z1", "a2"]
    with pytest.raises(ValueError, match="compare.layer_pairs names z1 ~ nope"):
        _compare(tmp_path / "bad", layers, layers, layer_pairs=[["z1", "nope"]])
