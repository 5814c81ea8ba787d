"""pipeline.ranking: one top-k contract (strongest first, lower index on ties, NaN weakest,
k clipped), checked on cases worked out by hand."""

from __future__ import annotations

import numpy as np

from pipeline.ranking import top_k, top_k_table, top_order

NAN = float("nan")


def test_strongest_first_ties_to_the_lower_index():
    order, values = top_k([3.0, 7.0, 1.0, 7.0, 3.0], 4)
    assert order.tolist() == [1, 3, 0, 4]
    assert values.tolist() == [7.0, 7.0, 3.0, 3.0]


def test_k_is_clipped_to_the_length_and_never_negative():
    assert top_order([2.0, 5.0], 10).tolist() == [1, 0]
    assert top_order([2.0, 5.0], 0).tolist() == []
    assert top_order([2.0, 5.0], -3).tolist() == []
    assert top_order(np.zeros(0), 3).tolist() == []


def test_nan_is_the_weakest_and_ties_with_minus_infinity_by_index():
    values = [NAN, -np.inf, 0.0, NAN]
    assert top_order(values, 4).tolist() == [2, 0, 1, 3]
    # The smallest first ("bottom" examples): NaN is still the weakest, tying with +inf.
    assert top_order([NAN, 5.0, -1.0, np.inf], 4, largest=False).tolist() == [2, 1, 0, 3]


def test_along_an_axis_other_axes_are_kept():
    values = np.array([[1.0, 9.0], [4.0, 9.0], [4.0, 2.0]])  # rows = images, columns = channels
    order, found = top_k(values, 2, axis=0)
    assert order.tolist() == [[1, 0], [2, 1]]  # column 0: 4 (row 1), 4 (row 2); column 1: 9, 9
    assert found.tolist() == [[4.0, 9.0], [4.0, 9.0]]
    assert top_order(values, 1, axis=1).tolist() == [[1], [1], [0]]


def test_a_tie_key_breaks_ties_before_the_index():
    # Candidates gathered from two shards: equal values rank by their global row.
    values = np.array([5.0, 5.0, 6.0, 5.0])
    rows = np.array([7, 3, 9, 5])
    assert top_order(values, 3, ties=rows).tolist() == [2, 1, 3]
    assert top_order(values, 3).tolist() == [2, 0, 1]


def test_tables_trim_to_the_classes_or_pad_to_a_fixed_width():
    scores = np.array([[1.0, 3.0, 3.0, NAN], [0.0, 0.0, 0.0, 0.0]])
    ids, values = top_k_table(scores, 3)
    assert ids.dtype == np.int32 and values.dtype == np.float32
    assert ids.tolist() == [[1, 2, 0], [0, 1, 2]]
    assert values.tolist() == [[3.0, 3.0, 1.0], [0.0, 0.0, 0.0]]
    # Fewer classes than k: trimmed to the classes, or padded with -1 / NaN to the width.
    ids, values = top_k_table(np.array([[NAN, 2.0]]), 3)
    assert ids.tolist() == [[1, -1]] and values[0, 0] == 2.0 and np.isnan(values[0, 1])
    ids, values = top_k_table(np.array([[NAN, 2.0]]), 3, width=3)
    assert ids.tolist() == [[1, -1, -1]] and np.isnan(values[0, 1:]).all()
    ids, values = top_k_table(np.zeros((0, 4)), 2, width=2)
    assert ids.shape == values.shape == (0, 2)
