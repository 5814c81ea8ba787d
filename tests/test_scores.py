"""Per-unit scores (pipeline/scores/compute.py) on planted behaviour with hand-computed values,
the scores store, and Results.scores / the CLI on a store written by hand."""

import numpy as np
import pytest

from pipeline.scores import SCORE_KEYS, compute
from pipeline.store import provenance
from pipeline.store.scores import LayerScores, ScoresStore, merge_files, part_matches, write_layer_file


def test_a_channel_that_fires_for_one_class_only_has_selectivity_one():
    # Channel 0 fires (5) on class 0's images only; channel 1 fires alike (2) on every class;
    # channel 2 fires 3 on class 1 and 1 on classes 0 and 2: (3 - 1) / (3 + 1) = 0.5.
    classes = np.array([0, 0, 1, 1, 2, 2])
    maxima = np.array([[5, 2, 1], [5, 2, 1], [-1, 2, 3], [0, 2, 3], [-3, 2, 1], [0, 2, 1]], float)
    index, best = compute.class_selectivity(maxima, classes)
    np.testing.assert_allclose(index, [1.0, 0.0, 0.5])
    assert best.tolist() == [0, 0, 1]  # the tie of channel 1 goes to the first class


def test_negative_activations_are_clipped_and_a_silent_channel_has_no_selectivity():
    classes = np.array([0, 1, -1])  # the unlabelled image is left out
    maxima = np.array([[-2.0, 4.0], [-5.0, -1.0], [9.0, 9.0]])
    index, best = compute.class_selectivity(maxima, classes)
    assert np.isnan(index[0]) and best[0] == -1  # never fires: undefined, not 0
    assert index[1] == pytest.approx(1.0)  # class 1's -1 counts as 0, not as a negative mean


def test_a_visualization_weaker_than_a_planted_image_has_strength_below_one():
    np.testing.assert_allclose(compute.strength([3.0, 8.0, 1.0], [4.0, 4.0, -1.0])[:2], [0.75, 2.0])
    assert np.isnan(compute.strength([1.0], [0.0])[0])


def test_specificity_margin_compares_a_channel_own_image_with_the_runner_up():
    # Rows: images of channels 0, 2 (rendered), 1 not rendered; columns: every channel.
    responses = np.array([[4.0, 0.0, 1.0], [3.0, 9.0, 2.0]])
    channels = np.array([0, 2])
    # channel 0: own 4, other image 3 -> 0.25; channel 2: own 2, other image 1 -> 0.5
    np.testing.assert_allclose(compute.specificity_margin(responses, channels), [0.25, 0.5])


def _clusters(rng, directions, per_cluster, noise=0.05):
    return np.concatenate([d + noise * rng.normal(size=(per_cluster, len(d))) for d in directions])


def test_two_planted_clusters_count_two_groups_and_one_cluster_one():
    rng = np.random.default_rng(0)
    a, b = np.eye(6)[0], np.eye(6)[1]  # orthogonal: the centroids' cosine is about 0
    score, groups = compute.polysemanticity(_clusters(rng, [a, b], 5))
    assert groups == 2 and score == pytest.approx(1.0, abs=0.05)
    score, groups = compute.polysemanticity(_clusters(rng, [a], 10))
    assert groups == 1 and score < 0.05
    assert compute.polysemanticity(np.eye(3)) == (pytest.approx(float("nan"), nan_ok=True), 0)


def test_clarity_is_the_mean_pairwise_cosine():
    # pairs: (e0, e0+e1) cos 1/sqrt2, (e0, e1) 0, (e0+e1, e1) 1/sqrt2 -> mean sqrt2 / 3
    vectors = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    assert compute.clarity(vectors) == pytest.approx(np.sqrt(2) / 3)
    assert compute.disagreement(np.array([[1.0, 0.0], [2.0, 0.0]])) == pytest.approx(0.0)


def test_the_path_check_flags_a_planted_unnatural_path():
    # Two earlier layers; the top examples and natural crops point along (1, 1, 0).
    examples = [np.array([[1.0, 1.0, 0.0], [1.0, 0.9, 0.1]])] * 2
    natural = [np.array([[1.0, 0.5, 0.2], [0.5, 1.0, 0.3]])] * 2
    natural_looking = [np.array([1.0, 1.0, 0.05])] * 2
    similarity, floor, flagged = compute.path_check(natural_looking, examples, natural)
    assert not flagged and (similarity > floor).all()
    unnatural = [np.array([0.0, 0.0, 1.0])] * 2  # orthogonal to every natural crop's path
    similarity, floor, flagged = compute.path_check(unnatural, examples, natural)
    assert flagged
    np.testing.assert_allclose(similarity, [0.1 / np.linalg.norm([2.0, 1.9, 0.1])] * 2, rtol=0.05)


def test_sparsity_on_a_hand_made_activation_array():
    maxima = np.array([[1.0, -1.0], [0.0, 2.0], [3.0, np.nan], [-2.0, 5.0]])
    maps = np.zeros((2, 2, 2, 2))
    maps[0, 0] = [[1, 0], [0, 0]]  # channel 0, example 0: 1 of 4 positions fire
    maps[0, 1] = [[1, 1], [1, -1]]  # example 1: 3 of 4
    maps[1, 0] = [[1, 1], [1, 1]]  # channel 1: its example 1 is not valid
    valid = np.array([[True, True], [True, False]])
    images, positions = compute.sparsity(maxima, maps, valid)
    np.testing.assert_allclose(images, [2 / 4, 2 / 3])  # NaN rows left out per channel
    np.testing.assert_allclose(positions, [0.5, 1.0])


def test_label_precision_counts_top_examples_under_the_label():
    truth = np.array([0, 1, 2, -1])
    top_rows = np.array([[0, 1, 3], [2, 0, -1], [0, 1, 2]])
    precision = compute.label_precision([(0, 1), (1,), None], top_rows, truth)
    np.testing.assert_allclose(precision[:2], [1.0, 0.0])  # image 3 has no true class
    assert np.isnan(precision[2])


def _layer_scores(channels=3, earlier=("a",)):
    columns = {"channel": np.arange(channels)}
    for key in SCORE_KEYS:
        columns[key] = np.linspace(0, 1, channels)
    columns["path_flag"] = np.array([False, True, False][:channels])
    columns["image_rank"] = np.arange(1, channels + 1)
    for key in ("visualization_max", "dataset_max"):
        columns[key] = np.ones(channels)
    columns["selectivity_class"] = np.zeros(channels, int)
    columns["clarity"] = np.array([0.5, np.nan, 0.2])[:channels]
    path = np.zeros((channels, len(earlier)))
    return LayerScores(columns, path, path, list(earlier), 0.25, "predicted", "late", 16)


def test_the_store_keeps_parts_merges_and_reads_back(tmp_path):
    record = provenance(stage="scores", settings={"examples": 4}, model={"name": "m", "weights": "random"})
    part = write_layer_file(tmp_path / "parts" / "late.h5", "late", _layer_scores(), record, "sum")
    assert part_matches(part, record, "sum")
    other = provenance(stage="scores", settings={"examples": 5}, model={"name": "m", "weights": "random"})
    assert not part_matches(part, other, "sum") and not part_matches(tmp_path / "none.h5", record, "sum")
    merge_files({"late": part}, tmp_path / "scores.h5", record, "sum")
    with ScoresStore(tmp_path / "scores.h5") as store:
        assert store.layers() == ["late"]
        table = store.table("late")
        assert table["path_flag"].tolist() == [False, True, False]
        assert store.info("late")["clarity_random"] == 0.25 and store.info("late")["path_layers"] == ["a"]
        with pytest.raises(KeyError, match="no scores of layer 'early'"):
            store.table("early")
