"""The authors' box evaluator as they run it (SPEC §7.3–7.6): the baseline of the benchmarks.

For every threshold it thresholds the quantised map, runs ``cv2.findContours`` and keeps all
contours (MaxBoxAccV2) or the largest one; the boxes of all thresholds are concatenated, their
IoUs with the ground truth computed in one call and sliced back per threshold. GT-known and
Top-1 Loc then compute the largest-contour boxes of every threshold a second time and compare
them with the first ground-truth box. Nothing is cached across thresholds, as in the authors'
code. ``scripts/benchmark_evaluator.py`` times ``wsol.metrics.evaluation.BoxEvaluator`` against
it; it is also an independent oracle for the tests.
"""

from __future__ import annotations

import cv2
import numpy as np

from wsol.metrics.boxes import iou_matrix

__all__ = ["AuthorsBoxEvaluator", "compute_bboxes_from_scoremaps"]


def _boxes(q: np.ndarray, threshold: float, multi_contour: bool) -> list[list[int]]:
    """Boxes of one threshold: all contours, or the largest by ``cv2.contourArea``."""
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


def compute_bboxes_from_scoremaps(scoremap: np.ndarray, thresholds: list[float],
                                  multi_contour_eval: bool) -> tuple[list[np.ndarray], list[int]]:
    """Boxes and box counts of every threshold, one ``findContours`` per threshold."""
    q = (scoremap * 255).astype(np.uint8)
    boxes = [np.asarray(_boxes(q, threshold, multi_contour_eval)) for threshold in thresholds]
    return boxes, [len(found) for found in boxes]


class AuthorsBoxEvaluator:
    """MaxBoxAcc(V2), GT-known and Top-1 Loc counters, per threshold and IoU threshold.

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

    def accumulate(self, scoremap: np.ndarray, gt_boxes: np.ndarray, pred_correct: bool) -> None:
        """Add one 2-D score map with its ground-truth boxes (already in the map's frame)."""
        boxes, counts = compute_bboxes_from_scoremaps(scoremap, self.thresholds,
                                                      self.multi_contour_eval)
        best = iou_matrix(np.concatenate(boxes), gt_boxes).max(axis=1)
        starts = np.cumsum([0] + counts[:-1])
        sliced = np.asarray([best[start:start + count].max()
                             for start, count in zip(starts, counts)])
        largest, _ = compute_bboxes_from_scoremaps(scoremap, self.thresholds, False)
        first = iou_matrix(np.concatenate(largest), gt_boxes[:1])[:, 0]
        for k, delta in enumerate(self.iou_thresholds):
            self.num_correct[k] += sliced >= delta / 100
            self.num_correct_gt_known[k] += first >= delta / 100
            if pred_correct:
                self.num_correct_top1[k] += first >= delta / 100
        self.num_images += 1
