"""A channel's filter as a picture (pipeline.site.filter_image), worked out by hand."""

import numpy as np
import pytest

from pipeline.site.filter_image import filter_image


def test_weights_map_around_grey_by_their_own_largest_magnitude_with_square_pixels():
    weights = np.zeros((3, 3, 3))
    weights[1, 1] = [2.0, 0.0, -1.0]  # red +2 (the largest), blue -1, at the centre
    weights[0, 2, 1] = -2.0  # green as negative as red is positive, top right
    picture = filter_image(weights, side=72)
    assert picture.shape == (72, 72, 3) and picture.dtype == np.uint8
    # 24 x 24 px per input pixel: the centre pixel's block is one colour.
    centre = picture[24:48, 24:48].reshape(-1, 3)
    assert (centre == centre[0]).all()
    assert centre[0].tolist() == [255, 128, 64]  # 0.5 + 0.5 * (1, 0, -0.5), rounded
    assert picture[0, 71].tolist() == [128, 0, 128]  # green at -max: black in green only
    assert (picture[71, 0] == 128).all()  # zero weights: mid-grey


def test_an_all_zero_filter_is_grey_and_bad_shapes_are_refused():
    assert (filter_image(np.zeros((3, 3, 3)), side=9) == 128).all()
    assert filter_image(np.ones((5, 5, 3)), side=4).shape == (5, 5, 3)  # never smaller than 1 px
    with pytest.raises(ValueError, match=r"\[h, w, 3\]"):
        filter_image(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        filter_image(np.full((3, 3, 3), np.nan))
