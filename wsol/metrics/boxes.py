"""Boxes from score maps, IoU and ground-truth rescaling (SPEC §2.4, §7.3, §7.4).

:func:`boxes_at_thresholds` traces contours: it is exact with respect to the reference
per-threshold loop (threshold, ``cv2.findContours`` with ``RETR_TREE``, ``cv2.boundingRect``,
largest ``cv2.contourArea``), lists the boxes in OpenCV's order, and computes contours once per
*distinct binary image* instead of once per threshold, on the bounding rectangle of the
foreground only (``findContours`` pads its input with zeros, so a crop that keeps every
foreground pixel yields the same contours in the same order). The evaluator takes the same boxes
for every threshold at once from :mod:`wsol.metrics.component_tree`, without tracing contours.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "EVAL_SIZE",
    "ScoreMapError",
    "ThresholdBoxes",
    "boxes_at_thresholds",
    "check_boxes",
    "check_scoremap",
    "foreground_cutoffs",
    "iou_matrix",
    "quantize",
    "rescale_boxes",
    "threshold_list",
]

EVAL_SIZE = 224

_EMPTY_BOX = np.zeros((1, 4), dtype=np.int64)


class ScoreMapError(ValueError):
    """A score map is not a finite 2-D float array with values in [0, 1]."""


def threshold_list(cam_curve_interval: float, rule: str = "authors") -> list[float]:
    """Score-map thresholds τ_j (SPEC §7.1).

    Args:
        cam_curve_interval: step Δ between thresholds.
        rule: ``authors`` — ``round(j·Δ, 3)`` for j = 0…⌊1/Δ⌋ (includes 1.0);
            ``wsolevaluation`` — ``numpy.arange(0, 1, Δ)`` (excludes 1.0).
    """
    if not 0 < cam_curve_interval <= 1:
        raise ValueError(f"cam_curve_interval must lie in (0, 1], got {cam_curve_interval}")
    if rule == "authors":
        return [round(j * cam_curve_interval, 3) for j in range(int(1 / cam_curve_interval) + 1)]
    if rule == "wsolevaluation":
        return list(np.arange(0, 1, cam_curve_interval))
    raise ValueError(f"unknown threshold rule {rule!r}; expected 'authors' or 'wsolevaluation'")


def check_scoremap(scoremap: np.ndarray, name: str = "score map") -> None:
    """Raise :class:`ScoreMapError` unless ``scoremap`` is 2-D float, finite and in [0, 1]."""
    if not isinstance(scoremap, np.ndarray):
        raise ScoreMapError(f"{name}: expected a numpy array, got {type(scoremap).__name__}")
    if scoremap.dtype not in (np.float32, np.float64):
        raise ScoreMapError(f"{name}: expected float32 or float64, got {scoremap.dtype}")
    if scoremap.ndim != 2:
        raise ScoreMapError(f"{name}: expected a 2-D map, got shape {scoremap.shape}")
    if scoremap.size == 0:
        raise ScoreMapError(f"{name}: empty map")
    if np.isnan(scoremap).any():
        raise ScoreMapError(f"{name}: contains NaN")
    low, high = scoremap.min(), scoremap.max()
    if low < 0 or high > 1:
        raise ScoreMapError(f"{name}: values must lie in [0, 1], found [{low}, {high}]")


def quantize(scoremap: np.ndarray) -> np.ndarray:
    """Return ``uint8(⌊255·s⌋)``, the multiplication done in the map's own dtype (SPEC §7.3)."""
    return (scoremap * scoremap.dtype.type(255)).astype(np.uint8)


def foreground_cutoffs(q: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Cutoffs ``c_j = ⌊τ_j·max(q)⌋ + 1``: threshold j keeps the pixels ``q >= c_j`` (SPEC §7.3).

    The product is taken in double precision and truncated, as ``int(τ·max(q))`` is.
    """
    return (np.asarray(thresholds, dtype=np.float64) * int(q.max())).astype(np.int64) + 1


def check_boxes(boxes: np.ndarray, name: str = "boxes") -> np.ndarray:
    """``boxes`` as an ``(N, 4)`` int64 array; ``ValueError`` unless ``0 <= x0 <= x1`` and
    ``0 <= y0 <= y1`` for every box."""
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if (boxes < 0).any() or inverted.any():
        raise ValueError(f"{name} must satisfy 0 <= x0 <= x1 and 0 <= y0 <= y1, "
                         f"got {boxes.tolist()}")
    return boxes


def iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU of inclusive-pixel boxes (SPEC §7.4).

    Args:
        boxes_a: ``(A, 4)`` integer boxes ``(x0, y0, x1, y1)``.
        boxes_b: ``(B, 4)`` integer boxes.

    Returns:
        ``(A, B)`` float64 matrix; a degenerate union gives 0.
    """
    boxes_a = check_boxes(boxes_a)
    boxes_b = check_boxes(boxes_b)
    a = boxes_a[:, None, :]
    b = boxes_b[None, :, :]
    inter_w = np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    inter_h = np.maximum(0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    inter = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    denominator = area_a + area_b - inter
    degenerate = denominator <= 0
    iou = inter / np.where(degenerate, 1, denominator)
    iou[degenerate] = 0.0
    return iou


def rescale_boxes(boxes: list[tuple[int, int, int, int]], image_size: tuple[int, int],
                  target_size: tuple[int, int] = (EVAL_SIZE, EVAL_SIZE)) -> np.ndarray:
    """Map original-pixel boxes into the evaluation frame with truncation (SPEC §2.4).

    Args:
        boxes: boxes ``(x0, y0, x1, y1)`` in original pixels.
        image_size: original ``(width, height)``.
        target_size: ``(width, height)`` of the evaluation frame.

    Returns:
        ``(N, 4)`` int64 array.
    """
    width, height = image_size
    target_width, target_height = target_size
    scaled = [(int(x0 * target_width / width), int(y0 * target_height / height),
               int(x1 * target_width / width), int(y1 * target_height / height))
              for x0, y0, x1, y1 in boxes]
    return np.asarray(scaled, dtype=np.int64).reshape(-1, 4)


@dataclass
class ThresholdBoxes:
    """Candidate boxes of one score map at every threshold.

    ``boxes[offsets[k]:offsets[k + 1]]`` are the all-contour boxes of the k-th distinct binary
    image, ``largest[k]`` indexes its largest-contour box in ``boxes``, and ``level[j]`` is the
    distinct binary image used at threshold j.
    """

    boxes: np.ndarray
    offsets: np.ndarray
    largest: np.ndarray
    level: np.ndarray


def _distinct_thresholds(q: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer cut-offs θ_j = ⌊τ_j·m⌋ grouped by the binary image ``q > θ`` they produce.

    Two cut-offs give the same binary image when no value of ``q`` lies in between, so each
    θ is replaced by the largest value of ``q`` that does not exceed it (−1 if none).
    """
    cutoffs = foreground_cutoffs(q, thresholds) - 1
    present = np.concatenate([[True], np.bincount(q.ravel(), minlength=256) > 0])
    floor_value = np.maximum.accumulate(np.where(present, np.arange(257) - 1, -1))
    effective = floor_value[np.minimum(cutoffs, 255) + 1]
    distinct, level = np.unique(effective, return_inverse=True)
    return distinct, level


def _foreground_extents(q: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
    """Bounding rectangle ``(top, bottom, left, right)`` of ``q > c`` for every cutoff ``c``.

    Rows are half-open; a cutoff with no foreground gives ``bottom == top == 0``.
    """
    extents = []
    for peaks in (q.max(axis=1), q.max(axis=0)):
        above = peaks[None, :] > cutoffs[:, None]
        first = above.argmax(axis=1)
        last = len(peaks) - above[:, ::-1].argmax(axis=1)
        present = above.any(axis=1)
        extents += [np.where(present, first, 0), np.where(present, last, 0)]
    return np.stack(extents, axis=1)


_NO_CONTOUR = (np.zeros((1, 1, 2), dtype=np.int32),)


def boxes_at_thresholds(q: np.ndarray, thresholds: np.ndarray) -> ThresholdBoxes:
    """All-contour and largest-contour boxes at every threshold (SPEC §7.3).

    Args:
        q: ``(H, W)`` uint8 quantised score map (see :func:`quantize`).
        thresholds: ``(T,)`` float64 thresholds τ_j.
    """
    height, width = q.shape
    distinct, level = _distinct_thresholds(q, thresholds)
    contours: list[np.ndarray] = []
    counts = []
    for cutoff, (top, bottom, left, right) in zip(distinct.tolist(),
                                                   _foreground_extents(q, distinct).tolist()):
        found = ()
        if bottom > top:
            _, binary = cv2.threshold(q[top:bottom, left:right], cutoff, 255, cv2.THRESH_BINARY)
            found = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE,
                                     offset=(left, top))[-2]
        contours.extend(found or _NO_CONTOUR)
        counts.append(len(found))
    counts = np.asarray(counts, dtype=np.int64)
    sizes = np.maximum(counts, 1)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    boxes, areas = _rects_and_areas(contours, width, height)
    boxes[offsets[:-1][counts == 0]] = _EMPTY_BOX
    return ThresholdBoxes(boxes, offsets, _first_argmax(areas, offsets), level)


def _first_argmax(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Index of the first maximum of every segment ``values[offsets[k]:offsets[k + 1]]``."""
    starts = offsets[:-1]
    segment = np.repeat(np.arange(len(starts)), np.diff(offsets))
    is_max = values == np.maximum.reduceat(values, starts)[segment]
    candidates = np.where(is_max, np.arange(len(values)), len(values))
    return np.minimum.reduceat(candidates, starts)


def _rects_and_areas(contours: list[np.ndarray], width: int, height: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Clipped bounding boxes and polygon areas of many contours at once.

    Matches ``cv2.boundingRect`` (box ``(x, y, x + w, y + h)`` clipped to ``W−1``, ``H−1``) and
    ``cv2.contourArea`` (Green's formula; exact in integer arithmetic).
    """
    lengths = np.fromiter(map(len, contours), dtype=np.int64, count=len(contours))
    points = np.concatenate(contours).reshape(-1, 2).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    x, y = points[:, 0], points[:, 1]
    x0 = np.minimum.reduceat(x, starts)
    y0 = np.minimum.reduceat(y, starts)
    x1 = np.minimum(np.maximum.reduceat(x, starts) + 1, width - 1)
    y1 = np.minimum(np.maximum.reduceat(y, starts) + 1, height - 1)
    successor = np.arange(1, len(points) + 1)
    successor[starts + lengths - 1] = starts
    cross = x * y[successor] - x[successor] * y
    areas = np.abs(np.add.reduceat(cross, starts)) / 2.0
    return np.stack([x0, y0, x1, y1], axis=1), areas
