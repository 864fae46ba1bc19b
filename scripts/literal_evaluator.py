"""A literal, per-threshold transcription of SPEC §7.3–7.6: the baseline of the evaluator.

For every threshold it thresholds the quantised map, runs ``cv2.findContours`` once for the
all-contour boxes and once more for the largest-contour box (as the authors' evaluator does),
and computes IoUs threshold by threshold with the same IoU function (SPEC §7.4), as the
reference evaluators do. It is slow on purpose: it is the yardstick that
``scripts/benchmark_evaluator.py`` measures ``wsol.metrics.evaluation.BoxEvaluator`` against, and an
independent oracle for the tests.
"""

from __future__ import annotations

import cv2
import numpy as np

from wsol.metrics.boxes import iou_matrix

__all__ = ["LiteralBoxEvaluator"]


def _boxes(q: np.ndarray, threshold: float, multi_contour: bool) -> list[list[int]]:
    height, width = q.shape
    _, binary = cv2.threshold(q, int(threshold * np.max(q)), 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    if len(contours) == 0:
        return [[0, 0, 0, 0]]
    if not multi_contour:
        contours = [max(contours, key=cv2.contourArea)]
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
    return boxes


class LiteralBoxEvaluator:
    """Per-threshold MaxBoxAcc(V2), GT-known and Top-1 Loc counters.

    Args:
        thresholds: score-map thresholds τ_j.
        iou_thresholds: IoU thresholds δ in percent.
        multi_contour_eval: all contours (V2) or the largest one for MaxBoxAcc.
    """

    def __init__(self, thresholds: list[float], iou_thresholds: list[int],
                 multi_contour_eval: bool = True) -> None:
        self.thresholds = thresholds
        self.iou_thresholds = iou_thresholds
        self.multi_contour_eval = multi_contour_eval
        shape = (len(iou_thresholds), len(thresholds))
        self.num_correct = np.zeros(shape, dtype=np.int64)
        self.num_correct_gt_known = np.zeros(shape, dtype=np.int64)
        self.num_correct_top1 = np.zeros(shape, dtype=np.int64)
        self.num_images = 0

    def accumulate(self, scoremap: np.ndarray, gt_boxes: list[list[int]],
                   pred_correct: bool) -> None:
        """Add one 2-D score map with its ground-truth boxes (already in the map's frame)."""
        q = (scoremap * scoremap.dtype.type(255)).astype(np.uint8)
        for j, threshold in enumerate(self.thresholds):
            boxes = _boxes(q, threshold, self.multi_contour_eval)
            best = iou_matrix(np.asarray(boxes), np.asarray(gt_boxes)).max()
            largest = _boxes(q, threshold, multi_contour=False)
            first = iou_matrix(np.asarray(largest), np.asarray(gt_boxes[:1]))[0, 0]
            for k, delta in enumerate(self.iou_thresholds):
                if best >= delta / 100:
                    self.num_correct[k, j] += 1
                if first >= delta / 100:
                    self.num_correct_gt_known[k, j] += 1
                    if pred_correct:
                        self.num_correct_top1[k, j] += 1
        self.num_images += 1
