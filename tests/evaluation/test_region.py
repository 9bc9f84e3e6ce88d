"""Tests of ptycho_dist.evaluation.region."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho_dist.errors import EvaluationError
from ptycho_dist.evaluation.region import bounding_box, erode, select_region


def _canvas(shape=(20, 30), covered=(slice(4, 16), slice(5, 25))) -> np.ndarray:
    canvas = np.full(shape, np.nan + 1j * np.nan, dtype=np.complex64)
    canvas[covered] = 1.0
    return canvas


@pytest.mark.parametrize("border, expected", [(0, 12 * 20), (1, 10 * 18), (3, 6 * 14)])
def test_region_is_covered_minus_border(border, expected):
    region = select_region(_canvas(), border=border)
    assert region.sum() == expected
    rows, cols = bounding_box(region)
    assert (rows.start, cols.start) == (4 + border, 5 + border)


def test_array_edge_counts_as_outside():
    region = select_region(np.ones((10, 10)), border=2)
    assert region.sum() == 36 and not region[1].any() and region[2, 2:8].all()


def test_illumination_threshold_keeps_bright_pixels():
    canvas = _canvas()
    illum = np.zeros(canvas.shape)
    illum[4:16, 5:25] = np.linspace(0.0, 1.0, 20)[None, :]
    region = select_region(canvas, illumination=illum, illumination_threshold=0.5)
    # columns whose value >= 0.5: linspace index >= 9.5 -> 10 of 20 columns
    assert region.sum() == 12 * 10 and region[4:16, 15:25].all()


@pytest.mark.parametrize("kwargs, message", [
    ({"illumination_threshold": 0.1}, "needs the summed illumination"),
    ({"illumination_threshold": 1.5, "illumination": np.ones((20, 30))}, r"in \(0, 1\]"),
    ({"illumination_threshold": 0.1, "illumination": np.ones((3, 3))}, "canvas shape"),
    ({"border": 7}, "empty evaluation region: 240 covered"),
    ({"border": -1}, "non-negative int"),
])
def test_region_errors(kwargs, message):
    with pytest.raises(EvaluationError, match=message):
        select_region(_canvas(), **kwargs)


def test_erode_stack_does_not_cross_images():
    stack = np.ones((3, 9, 9), bool)
    stack[1] = False
    out = erode(stack, 1)
    assert out[0].sum() == 49 and out[1].sum() == 0 and out[2].sum() == 49


def test_bounding_box_of_empty_mask_raises():
    with pytest.raises(EvaluationError, match="empty mask"):
        bounding_box(np.zeros((4, 4), bool))
