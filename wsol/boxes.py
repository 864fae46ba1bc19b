"""Boxes from score maps, IoU and ground-truth rescaling (SPEC §2.4, §7.3, §7.4).

The box extraction is exact with respect to the reference per-threshold loop (threshold,
``cv2.findContours`` with ``RETR_TREE``, ``cv2.boundingRect``, largest ``cv2.contourArea``) but
computes contours once per *distinct binary image* instead of once per threshold, on the
bounding rectangle of the foreground only (``findContours`` pads its input with zeros, so a crop
that keeps every foreground pixel yields the same contours in the same order), and derives
bounding rectangles and areas for all contours of an image in a few vectorised NumPy calls.
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
    "check_scoremap",
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


def iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU of inclusive-pixel boxes (SPEC §7.4).

    Args:
        boxes_a: ``(A, 4)`` integer boxes ``(x0, y0, x1, y1)``.
        boxes_b: ``(B, 4)`` integer boxes.

    Returns:
        ``(A, B)`` float64 matrix; a degenerate union gives 0.
    """
    boxes_a = np.asarray(boxes_a, dtype=np.int64).reshape(-1, 4)
    boxes_b = np.asarray(boxes_b, dtype=np.int64).reshape(-1, 4)
    for boxes in (boxes_a, boxes_b):
        if (boxes < 0).any() or (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
            raise ValueError(f"boxes must satisfy 0 <= x0 <= x1 and 0 <= y0 <= y1, got {boxes.tolist()}")
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
    peak = int(q.max())
    cutoffs = (thresholds * peak).astype(np.int64)
    present = np.zeros(257, dtype=bool)
    present[np.unique(q).astype(np.int64) + 1] = True
    present[0] = True
    floor_value = np.maximum.accumulate(np.where(present, np.arange(257) - 1, -1))
    effective = floor_value[np.minimum(cutoffs, 255) + 1]
    distinct, level = np.unique(effective, return_inverse=True)
    return distinct, level


def boxes_at_thresholds(q: np.ndarray, thresholds: np.ndarray) -> ThresholdBoxes:
    """All-contour and largest-contour boxes at every threshold (SPEC §7.3).

    Args:
        q: ``(H, W)`` uint8 quantised score map (see :func:`quantize`).
        thresholds: ``(T,)`` float64 thresholds τ_j.
    """
    height, width = q.shape
    distinct, level = _distinct_thresholds(q, thresholds)
    row_peak, column_peak = q.max(axis=1), q.max(axis=0)
    contours_per_level = []
    for cutoff in distinct:
        rows = np.flatnonzero(row_peak > cutoff)
        if len(rows) == 0:
            contours_per_level.append(())
            continue
        columns = np.flatnonzero(column_peak > cutoff)
        top, bottom, left, right = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
        _, binary = cv2.threshold(q[top:bottom, left:right], float(cutoff), 255,
                                  cv2.THRESH_BINARY)
        contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE,
                                    offset=(int(left), int(top)))[-2]
        contours_per_level.append(contours)
    counts = np.array([max(len(c), 1) for c in contours_per_level], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    flat = [c for contours in contours_per_level for c in contours]
    if flat:
        rects, areas = _rects_and_areas(flat, width, height)
    else:
        rects, areas = np.zeros((0, 4), np.int64), np.zeros(0)
    boxes = np.empty((offsets[-1], 4), dtype=np.int64)
    largest = np.empty(len(distinct), dtype=np.int64)
    source = 0
    for k, contours in enumerate(contours_per_level):
        start = offsets[k]
        if not contours:
            boxes[start] = _EMPTY_BOX
            largest[k] = start
            continue
        n = len(contours)
        boxes[start:start + n] = rects[source:source + n]
        largest[k] = start + int(np.argmax(areas[source:source + n]))
        source += n
    return ThresholdBoxes(boxes, offsets, largest, level)


def _rects_and_areas(contours: list[np.ndarray], width: int, height: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Clipped bounding boxes and polygon areas of many contours at once.

    Matches ``cv2.boundingRect`` (box ``(x, y, x + w, y + h)`` clipped to ``W−1``, ``H−1``) and
    ``cv2.contourArea`` (Green's formula; exact in integer arithmetic).
    """
    lengths = np.fromiter((len(c) for c in contours), dtype=np.int64, count=len(contours))
    points = np.concatenate(contours).reshape(-1, 2).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    x, y = points[:, 0], points[:, 1]
    x0 = np.minimum.reduceat(x, starts)
    y0 = np.minimum.reduceat(y, starts)
    x1 = np.minimum(np.maximum.reduceat(x, starts) + 1, width - 1)
    y1 = np.minimum(np.maximum.reduceat(y, starts) + 1, height - 1)
    successor = np.arange(1, len(points) + 1)
    ends = starts + lengths
    successor[ends - 1] = starts
    cross = x * y[successor] - x[successor] * y
    areas = np.abs(np.add.reduceat(cross, starts)) / 2.0
    return np.stack([x0, y0, x1, y1], axis=1), areas
