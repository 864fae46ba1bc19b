"""Randomised property test: the component-tree boxes equal cv2.findContours' at every level.

For thousands of small uint8 maps of many shapes, and for cutoffs at which the binary image
``q >= c`` changes (a sample of them, plus cutoffs just above a level and past the maximum),
the multiset of boxes of
:func:`level_boxes` equals that of the contours of ``cv2.findContours(..., RETR_TREE, ...)``
(SPEC §7.3), and so do the number of boxes and the largest-contour box.

The compiled passes index arrays without bounds checks; after changing them, run these tests
once with numba's checks on (a separate cache, since it compiles anew):
``NUMBA_BOUNDSCHECK=1 NUMBA_CACHE_DIR=$(mktemp -d) pytest tests/test_component_tree.py``.
"""

from collections import Counter

import cv2
import numpy as np
import pytest

from wsol.metrics.component_tree import level_boxes

NUM_MAPS = 300
CUTOFFS_PER_MAP = 8


def _contour_boxes(binary: np.ndarray) -> tuple[list[tuple[int, ...]], tuple[int, ...]]:
    """All-contour boxes and the largest-contour box, as the reference loop computes them."""
    height, width = binary.shape
    contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    if not contours:
        return [(0, 0, 0, 0)], (0, 0, 0, 0)
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append((x, y, min(x + w, width - 1), min(y + h, height - 1)))
    areas = [cv2.contourArea(contour) for contour in contours]
    return boxes, boxes[int(np.argmax(areas))]


def _blobs(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    total = np.zeros(shape)
    for _ in range(rng.integers(1, 5)):
        cy, cx = rng.uniform(-2, shape[0] + 2), rng.uniform(-2, shape[1] + 2)
        total += rng.uniform(0.3, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2)
                                               / rng.uniform(1, 30))
    return total


def _rings(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Concentric rings: holes in holes, islands in holes (some rings broken)."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
    radius = np.hypot(yy - cy, xx - cx)
    rings = np.cos(radius * rng.uniform(0.8, 2.5)) + 1
    if rng.random() < 0.5:
        rings[rng.random(shape) < 0.1] = 0
    return rings * np.exp(-radius / rng.uniform(3, 30))


def _map(seed: int) -> np.ndarray:
    """A uint8 map of one of the families, quantised to a few or many levels."""
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 26)), int(rng.integers(1, 26)))
    family = seed % 9
    if family == 0:
        values = rng.random(shape)
    elif family == 1:
        values = _blobs(rng, shape)
    elif family == 2:
        values = _rings(rng, shape)
    elif family == 3:
        values = (np.indices(shape).sum(axis=0) % 2) * rng.random(shape)
    elif family == 4:
        values = (rng.random(shape) < rng.uniform(0.01, 0.2)) * rng.random(shape)
    elif family == 5:
        values = np.full(shape, rng.integers(0, 2) * rng.random())
    elif family == 6:
        values = np.pad(_rings(rng, (max(shape[0] - 2, 1), max(shape[1] - 2, 1))), 1)
    elif family == 7:
        values = _blobs(rng, shape) * (rng.random(shape) > 0.15)
    else:
        values = rng.random(shape) ** 4 * (np.indices(shape)[0] % 3 > 0)
    peak = values.max()
    levels = int(rng.choice([2, 3, 5, 16, 256]))
    scale = rng.integers(1, 256)
    if peak > 0:
        values = np.floor(values / peak * (levels - 1)) / max(levels - 1, 1)
    return np.minimum(values * scale, 255).astype(np.uint8)


def _check(q: np.ndarray, seed: int) -> None:
    found = level_boxes(q)
    present = np.unique(q).astype(np.int64)
    changes = np.union1d(present[present > 0], np.minimum(present + 1, 256))
    rng = np.random.default_rng(seed)
    sampled = rng.choice(changes, min(CUTOFFS_PER_MAP, len(changes)), replace=False)
    for cutoff in sorted({*sampled.tolist(), 1, int(q.max()) + 1, 256}):
        binary = np.where(q >= cutoff, 255, 0).astype(np.uint8)
        boxes, largest = _contour_boxes(binary)
        holds = (found.first_cutoff <= cutoff) & (found.last_cutoff >= cutoff)
        got = [tuple(box) for box in found.boxes[holds].tolist()]
        context = f"map seed {seed}, shape {q.shape}, cutoff {cutoff}"
        assert Counter(got) == Counter(boxes), context
        assert found.num_boxes[cutoff] == len(boxes), context
        assert tuple(found.largest[cutoff].tolist()) == largest, context


@pytest.mark.parametrize("block", range(8))
def test_boxes_equal_find_contours_at_every_level(block: int) -> None:
    for seed in range(block * NUM_MAPS, (block + 1) * NUM_MAPS):
        _check(_map(seed), seed)


def test_score_map_sized_maps() -> None:
    rng = np.random.default_rng(7)
    for seed in range(6):
        small = rng.random((int(rng.integers(7, 29)),) * 2).astype(np.float32)
        scoremap = cv2.resize(small, (224, 224), interpolation=cv2.INTER_CUBIC)
        scoremap = np.clip(scoremap, 0, None) / scoremap.max()
        _check((scoremap * np.float32(255)).astype(np.uint8), seed)

