"""Box extraction, IoU and rescaling: the SPEC §7.10 test vectors and a literal oracle."""

import os
import sys

import numpy as np
import pytest

from wsol.metrics.boxes import (
    ScoreMapError,
    boxes_at_thresholds,
    check_scoremap,
    iou_matrix,
    quantize,
    rescale_boxes,
    threshold_list,
)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "scripts"))
from literal_evaluator import _boxes as literal_boxes  # noqa: E402

THRESHOLDS = np.array([0.0, 0.2, 0.4, 0.6, 0.8])

UNIMODAL = np.array([[0.0, 0.0, 0.0, 0.0, 0.0],
                     [0.0, 0.4, 0.4, 0.4, 0.6],
                     [0.0, 0.4, 1.0, 0.8, 0.6],
                     [0.0, 0.4, 0.4, 0.4, 0.6]], dtype=np.float32)

MULTIMODAL = np.array([[0.4, 0.0, 0.2, 0.2, 0.2],
                       [0.4, 0.4, 0.0, 0.4, 0.0],
                       [0.0, 0.0, 0.0, 0.4, 0.0],
                       [1.0, 0.6, 0.8, 0.2, 0.2]], dtype=np.float32)


def _per_threshold(scoremap: np.ndarray) -> tuple[list, list]:
    found = boxes_at_thresholds(quantize(scoremap), THRESHOLDS)
    largest = [tuple(found.boxes[found.largest[k]]) for k in found.level]
    every = [{tuple(b) for b in found.boxes[found.offsets[k]:found.offsets[k + 1]]}
             for k in found.level]
    return largest, every


def test_iou_of_spec_pair() -> None:
    assert iou_matrix([[1, 2, 5, 6]], [[3, 1, 4, 5]])[0, 0] == pytest.approx(8 / 27, abs=0)


def test_iou_of_zero_boxes_is_one() -> None:
    np.testing.assert_array_equal(iou_matrix(np.zeros((2, 4)), np.zeros((3, 4))), np.ones((2, 3)))


def test_iou_rejects_inverted_box() -> None:
    with pytest.raises(ValueError, match="x0 <= x1"):
        iou_matrix([[5, 0, 4, 3]], [[0, 0, 1, 1]])


def test_iou_matrix_identity() -> None:
    boxes = [[1, 1, 3, 3], [4, 4, 5, 5]]
    np.testing.assert_array_equal(iou_matrix(boxes, boxes), np.eye(2))


@pytest.mark.parametrize(("box", "source", "target", "expected"), [
    ((1, 2, 4, 3), (10, 20), (35, 10), (3, 1, 14, 1)),
    ((1, 2, 1, 2), (3, 3), (3, 3), (1, 2, 1, 2)),
])
def test_rescale(box: tuple, source: tuple, target: tuple, expected: tuple) -> None:
    assert tuple(rescale_boxes([box], source, target)[0]) == expected


def test_unimodal_largest_boxes() -> None:
    largest, _ = _per_threshold(UNIMODAL)
    assert largest == [(1, 1, 4, 3), (1, 1, 4, 3), (2, 1, 4, 3), (2, 2, 4, 3), (2, 2, 3, 3)]


def test_multimodal_boxes() -> None:
    largest, every = _per_threshold(MULTIMODAL)
    assert largest == [(0, 0, 4, 3), (0, 0, 2, 2), (0, 3, 3, 3), (2, 3, 3, 3), (0, 3, 1, 3)]
    assert every == [{(0, 0, 4, 3)}, {(0, 1, 4, 3), (0, 0, 2, 2)}, {(0, 3, 3, 3)},
                     {(2, 3, 3, 3), (0, 3, 1, 3)}, {(0, 3, 1, 3)}]


def test_all_zero_map_gives_fallback_box() -> None:
    largest, every = _per_threshold(np.zeros((3, 3), dtype=np.float32))
    assert largest == [(0, 0, 0, 0)] * 5
    assert every == [{(0, 0, 0, 0)}] * 5


@pytest.mark.parametrize("bad", [
    np.full((4, 4), np.nan, dtype=np.float32),
    np.full((4, 4), 1.5, dtype=np.float32),
    np.full((4, 4), -0.1, dtype=np.float32),
    np.zeros((4, 4), dtype=np.uint8),
    np.zeros((2, 4, 4), dtype=np.float32),
])
def test_invalid_scoremaps_are_rejected(bad: np.ndarray) -> None:
    with pytest.raises(ScoreMapError):
        check_scoremap(bad)


def test_threshold_lists() -> None:
    authors = threshold_list(0.001)
    assert len(authors) == 1001 and authors[200] == 0.2 and authors[-1] == 1.0
    wsol = threshold_list(0.001, "wsolevaluation")
    assert len(wsol) == 1000 and wsol[-1] < 1.0
    with pytest.raises(ValueError, match="unknown threshold rule"):
        threshold_list(0.01, "other")


@pytest.mark.parametrize("seed", range(12))
def test_matches_literal_per_threshold_loop(seed: int) -> None:
    """Random maps of many shapes: every box at every threshold equals the literal loop's."""
    rng = np.random.default_rng(seed)
    height, width = rng.integers(5, 60, size=2)
    kind = seed % 3
    if kind == 0:
        scoremap = rng.random((height, width))
    elif kind == 1:
        scoremap = (rng.random((height, width)) > 0.7) * rng.random((height, width))
    else:
        yy, xx = np.mgrid[:height, :width]
        scoremap = np.exp(-((yy - height / 2) ** 2 + (xx - width / 3) ** 2) / (height * 3))
        scoremap = np.where(rng.random((height, width)) > 0.9, 0, scoremap)
    scoremap = (scoremap / max(scoremap.max(), 1e-9)).astype(np.float32)
    thresholds = np.asarray(threshold_list(0.01))
    q = quantize(scoremap)
    found = boxes_at_thresholds(q, thresholds)
    for j, threshold in enumerate(thresholds):
        k = found.level[j]
        every = found.boxes[found.offsets[k]:found.offsets[k + 1]].tolist()
        assert every == literal_boxes(q, threshold, multi_contour=True)
        assert [found.boxes[found.largest[k]].tolist()] == literal_boxes(q, threshold, False)
