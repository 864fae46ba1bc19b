"""WSOL evaluators: MaxBoxAcc, MaxBoxAccV2, GT-known / Top-1 Loc and PxAP (SPEC §7).

The evaluators keep additive integer counters (boxes) or histograms (masks) with
``accumulate`` / ``merge`` / ``compute``, so chunked or distributed evaluation is a sum of
counters. This module does not import torch; :func:`evaluate_scoremaps` evaluates score maps
saved as ``{scoremap_root}/{image_id}.npy`` (the command line is ``python -m wsol.evaluation``).
"""

from __future__ import annotations

import copy
import io
import os
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from tokenize import TokenError

import numpy as np
from tqdm import tqdm

from wsol.data.masks import MASK_BACKGROUND, MASK_FOREGROUND, load_gt_mask
from wsol.data.metadata import SplitMetadata
from wsol.metrics.boxes import (
    EVAL_SIZE,
    ScoreMapError,
    check_boxes,
    check_scoremap,
    foreground_cutoffs,
    quantize,
    rescale_boxes,
    threshold_list,
)
from wsol.metrics.component_tree import CutoffIous, cutoff_ious, warm_up

__all__ = [
    "BoxEvaluator",
    "MaskEvaluator",
    "ScoreMapError",
    "build_evaluator",
    "evaluate_scoremaps",
]


def _validated(scoremap: np.ndarray, image_id: str) -> np.ndarray:
    check_scoremap(scoremap, f"score map of {image_id!r}")
    if scoremap.shape != (EVAL_SIZE, EVAL_SIZE):
        raise ScoreMapError(f"score map of {image_id!r}: expected shape "
                            f"({EVAL_SIZE}, {EVAL_SIZE}), got {scoremap.shape}")
    return scoremap


def _copy_counter(value: int | np.ndarray) -> int | np.ndarray:
    """A counter's value for a state dict: a Python int for scalars, an array copy otherwise."""
    return int(value) if np.ndim(value) == 0 else np.copy(value)


class _Evaluator:
    """Shared bookkeeping: additive counters named in ``_COUNTERS`` plus a settings dict."""

    _COUNTERS: tuple[str, ...] = ()
    config: dict
    metadata: SplitMetadata

    def reset(self) -> None:
        """Zero every counter."""
        raise NotImplementedError

    def accumulate(self, scoremap: np.ndarray, image_id: str,
                   pred_correct: bool | None = None) -> None:
        """Add one image."""
        raise NotImplementedError

    def accumulate_batch(self, scoremaps: np.ndarray, image_ids: Sequence[str],
                         pred_correct: Sequence[bool] | None = None) -> None:
        """Add a batch of ``(B, 224, 224)`` maps."""
        if len(scoremaps) != len(image_ids):
            raise ValueError(f"{len(scoremaps)} score maps for {len(image_ids)} image ids")
        for index, image_id in enumerate(image_ids):
            correct = None if pred_correct is None else bool(pred_correct[index])
            self.accumulate(scoremaps[index], image_id, correct)

    def state_dict(self) -> dict:
        """Counters and settings; :meth:`merge` adds another evaluator's state."""
        return {"config": dict(self.config),
                **{key: _copy_counter(getattr(self, key)) for key in self._COUNTERS}}

    def load_state_dict(self, state: dict) -> None:
        """Replace the counters by ``state``."""
        self.reset()
        self.merge(state)

    def merge(self, other: _Evaluator | dict) -> None:
        """Add the counters of another evaluator (or its ``state_dict``) with equal settings."""
        state = other.state_dict() if isinstance(other, _Evaluator) else other
        if state["config"] != self.config:
            raise ValueError(f"cannot merge evaluators with different settings: "
                             f"{state['config']} vs {self.config}")
        for key in self._COUNTERS:
            total = getattr(self, key) + state[key]
            setattr(self, key, int(total) if np.ndim(total) == 0 else total)

    def restricted(self, image_ids: Sequence[str]) -> _Evaluator:
        """A fresh evaluator with the same settings that only knows ``image_ids``."""
        clone = copy.copy(self)
        clone.metadata = self.metadata.subset(list(image_ids))
        clone.reset()
        return clone


class BoxEvaluator(_Evaluator):
    """Box metrics over 224×224 score maps (SPEC §7.3–7.6).

    Args:
        metadata: split metadata with image sizes and boxes.
        cam_curve_interval: threshold step Δ.
        iou_threshold_list: IoU thresholds δ in percent.
        multi_contour_eval: all contours (MaxBoxAccV2) or the largest one (MaxBoxAcc).
        loc_threshold: score-map threshold of GT-known and Top-1 Loc.
        loc_iou_threshold: IoU threshold (percent) of GT-known and Top-1 Loc.
        threshold_rule: ``authors`` (default) or ``wsolevaluation`` (see ``threshold_list``).
    """

    def __init__(self, metadata: SplitMetadata, cam_curve_interval: float = 0.001,
                 iou_threshold_list: Sequence[int] = (30, 50, 70),
                 multi_contour_eval: bool = True, loc_threshold: float = 0.2,
                 loc_iou_threshold: int = 50, threshold_rule: str = "authors") -> None:
        if metadata.has_masks:
            raise ValueError(f"{metadata.dataset_name} is a mask dataset; use MaskEvaluator")
        self.metadata = metadata
        self.thresholds = np.asarray(threshold_list(cam_curve_interval, threshold_rule))
        self.iou_threshold_list = [int(d) for d in iou_threshold_list]
        if loc_iou_threshold not in self.iou_threshold_list:
            raise ValueError(f"loc_iou_threshold {loc_iou_threshold} must be in "
                             f"iou_threshold_list {self.iou_threshold_list}")
        matches = np.flatnonzero(self.thresholds == loc_threshold)
        if len(matches) == 0:
            raise ValueError(f"loc_threshold {loc_threshold} is not one of the thresholds of "
                             f"cam_curve_interval {cam_curve_interval} (rule {threshold_rule!r})")
        self.loc_threshold_index = int(matches[0])
        self.loc_iou_index = self.iou_threshold_list.index(loc_iou_threshold)
        self.multi_contour_eval = multi_contour_eval
        self.config = {"cam_curve_interval": cam_curve_interval,
                       "iou_threshold_list": self.iou_threshold_list,
                       "multi_contour_eval": multi_contour_eval, "loc_threshold": loc_threshold,
                       "loc_iou_threshold": loc_iou_threshold, "threshold_rule": threshold_rule}
        self._deltas = np.asarray(self.iou_threshold_list, dtype=np.float64)[:, None] / 100
        self.reset()

    def reset(self) -> None:
        """Zero every counter (and forget cached ground truth)."""
        shape = (len(self.iou_threshold_list), len(self.thresholds))
        self._gt_cache: dict[str, np.ndarray] = {}
        self.num_images = 0
        self.num_with_prediction = 0
        self.num_pred_correct = 0
        self.num_correct = np.zeros(shape, dtype=np.int64)
        self.num_correct_gt_known = np.zeros(shape, dtype=np.int64)
        self.num_correct_top1 = np.zeros(shape, dtype=np.int64)
        self.num_correct_gt_known_any = np.zeros(shape, dtype=np.int64)
        self.num_correct_top1_any = np.zeros(shape, dtype=np.int64)

    def gt_boxes(self, image_id: str) -> np.ndarray:
        """Ground-truth boxes of an image in the 224×224 frame, in file order."""
        if image_id not in self._gt_cache:
            if image_id not in self.metadata.boxes:
                raise KeyError(f"image id {image_id!r} has no boxes in {self.metadata.folder}")
            boxes = rescale_boxes(self.metadata.boxes[image_id],
                                  self.metadata.image_sizes[image_id])
            if len(boxes) == 0:
                raise ValueError(f"image id {image_id!r} has no boxes in {self.metadata.folder}")
            self._gt_cache[image_id] = check_boxes(boxes, f"boxes of image id {image_id!r}")
        return self._gt_cache[image_id]

    def image_ious(self, scoremap: np.ndarray, image_id: str) -> dict[str, np.ndarray]:
        """Per-threshold best IoUs of one score map.

        Returns:
            ``multi``: best IoU of any all-contour box with any GT box; ``single_any``: IoU of
            the largest-contour box with any GT box; ``single_first``: with the first GT box;
            ``num_boxes``: number of all-contour boxes. Each has shape ``(T,)``.
        """
        q = quantize(_validated(scoremap, image_id))
        return self.ious_at_thresholds(q, cutoff_ious(q, self.gt_boxes(image_id)))

    def ious_at_thresholds(self, q: np.ndarray, found: CutoffIous) -> dict[str, np.ndarray]:
        """:meth:`image_ious` from the quantised map and its per-cutoff IoUs (which do not
        depend on the thresholds, so evaluators with other thresholds can share them)."""
        cutoffs = foreground_cutoffs(q, self.thresholds)
        return {"multi": found.multi[cutoffs],
                "single_any": found.single_any[cutoffs],
                "single_first": found.single_first[cutoffs],
                "num_boxes": found.num_boxes[cutoffs].astype(np.int64)}

    def accumulate(self, scoremap: np.ndarray, image_id: str,
                   pred_correct: bool | None = None) -> None:
        """Add one image; ``pred_correct`` (head-1 prediction right) enables Top-1 Loc."""
        self.accumulate_ious(self.image_ious(scoremap, image_id), pred_correct)

    def accumulate_ious(self, ious: dict[str, np.ndarray], pred_correct: bool | None = None
                        ) -> None:
        """Add one image given its :meth:`image_ious`."""
        box_iou = ious["multi"] if self.multi_contour_eval else ious["single_any"]
        gt_known = ious["single_first"] >= self._deltas
        gt_known_any = ious["single_any"] >= self._deltas
        self.num_correct += box_iou >= self._deltas
        self.num_correct_gt_known += gt_known
        self.num_correct_gt_known_any += gt_known_any
        if pred_correct is not None:
            self.num_with_prediction += 1
            if pred_correct:
                self.num_pred_correct += 1
                self.num_correct_top1 += gt_known
                self.num_correct_top1_any += gt_known_any
        self.num_images += 1

    _COUNTERS = ("num_images", "num_with_prediction", "num_pred_correct", "num_correct",
                 "num_correct_gt_known", "num_correct_top1", "num_correct_gt_known_any",
                 "num_correct_top1_any")

    def compute(self) -> dict:
        """Metrics in percent (SPEC §7.5–7.7, §7.9) plus per-threshold curves."""
        if self.num_images == 0:
            raise ValueError("no image was accumulated")
        if self.num_with_prediction not in (0, self.num_images):
            raise ValueError(f"pred_correct was given for {self.num_with_prediction} of "
                             f"{self.num_images} images; give it for all or none")
        n = self.num_images
        curves = 100.0 * self.num_correct / n
        best = curves.max(axis=1)
        at = (self.loc_iou_index, self.loc_threshold_index)
        results: dict = {"num_images": n}
        for delta, value in zip(self.iou_threshold_list, best):
            results[f"maxboxacc_IOU_{delta}"] = float(value)
        if self.multi_contour_eval:
            results["maxboxacc_v2"] = float(best.mean())
        else:
            results["maxboxacc"] = float(best[self.iou_threshold_list.index(50)]) \
                if 50 in self.iou_threshold_list else float(best.mean())
            results["maxboxacc_v2"] = results["maxboxacc"]  # the authors' key (SPEC §7.5)
        results["box_v2_metric"] = self.multi_contour_eval
        results["gt_loc"] = 100.0 * int(self.num_correct_gt_known[at]) / n
        results["gt_loc_any_box"] = 100.0 * int(self.num_correct_gt_known_any[at]) / n
        if self.num_with_prediction:
            results["top1_cls_from_pred_correct"] = 100.0 * self.num_pred_correct / n
            results["top1_loc"] = 100.0 * int(self.num_correct_top1[at]) / n
            results["top1_loc_any_box"] = 100.0 * int(self.num_correct_top1_any[at]) / n
        results["curves"] = {
            "thresholds": self.thresholds.tolist(),
            "box_accuracy": {str(d): c.tolist() for d, c in zip(self.iou_threshold_list, curves)},
            "gt_known_loc": {str(d): (100.0 * c / n).tolist()
                             for d, c in zip(self.iou_threshold_list, self.num_correct_gt_known)},
        }
        if self.num_with_prediction:
            results["curves"]["top1_loc"] = {
                str(d): (100.0 * c / n).tolist()
                for d, c in zip(self.iou_threshold_list, self.num_correct_top1)}
        return results


class MaskEvaluator(_Evaluator):
    """Pixel average precision (PxAP) over 224×224 score maps (SPEC §7.8).

    Args:
        metadata: split metadata with mask paths.
        mask_root: folder the mask paths are relative to.
        cam_curve_interval: threshold step Δ.
        threshold_rule: ``authors`` (default) or ``wsolevaluation``.
        histogram_dtype: ``float64`` (exact counts, default) or ``float32`` (the authors' variant).
    """

    def __init__(self, metadata: SplitMetadata, mask_root: str, cam_curve_interval: float = 0.001,
                 threshold_rule: str = "authors", histogram_dtype: str = "float64") -> None:
        if not metadata.has_masks:
            raise ValueError(f"{metadata.dataset_name} is a box dataset; use BoxEvaluator")
        if not os.path.isdir(mask_root):
            raise FileNotFoundError(f"mask root not found: {mask_root} (check --mask_root)")
        if histogram_dtype not in ("float64", "float32"):
            raise ValueError(f"histogram_dtype must be float64 or float32, got {histogram_dtype!r}")
        self.metadata = metadata
        self.mask_root = mask_root
        edges = threshold_list(cam_curve_interval, threshold_rule) + [1.0, 2.0, 3.0]
        self.edges = np.asarray(edges)
        self.dtype = np.dtype(histogram_dtype)
        self.config = {"cam_curve_interval": cam_curve_interval, "threshold_rule": threshold_rule,
                       "histogram_dtype": histogram_dtype}
        self.reset()

    _COUNTERS = ("num_images", "gt_true_score_hist", "gt_false_score_hist")

    def reset(self) -> None:
        """Zero the histograms."""
        self.num_images = 0
        self.gt_true_score_hist = np.zeros(len(self.edges) - 1, dtype=self.dtype)
        self.gt_false_score_hist = np.zeros(len(self.edges) - 1, dtype=self.dtype)

    def gt_mask(self, image_id: str) -> np.ndarray:
        """Encoded ground truth of an image (1 fg, 0 bg, 255 ignore)."""
        if image_id not in self.metadata.mask_paths:
            raise KeyError(f"image id {image_id!r} has no masks in {self.metadata.folder}")
        mask_paths, ignore_path = self.metadata.mask_paths[image_id]
        return load_gt_mask(self.mask_root, mask_paths, ignore_path)

    def _histogram(self, scores: np.ndarray) -> np.ndarray:
        """``numpy.histogram`` over ``self.edges`` (last bin closed) via one binary search."""
        bins = np.searchsorted(self.edges, scores.astype(np.float64), side="right") - 1
        bins[scores == self.edges[-1]] = len(self.edges) - 2
        return np.bincount(bins, minlength=len(self.edges) - 1)

    def accumulate(self, scoremap: np.ndarray, image_id: str,
                   pred_correct: bool | None = None) -> None:
        """Add one image (``pred_correct`` is accepted for interface symmetry and unused)."""
        scoremap = _validated(scoremap, image_id)
        mask = self.gt_mask(image_id)
        foreground = self._histogram(scoremap[mask == MASK_FOREGROUND])
        background = self._histogram(scoremap[mask == MASK_BACKGROUND])
        self.gt_true_score_hist += foreground.astype(self.dtype)
        self.gt_false_score_hist += background.astype(self.dtype)
        self.num_images += 1

    def compute(self) -> dict:
        """PxAP in percent and the precision-recall curve.

        Raises:
            ValueError: no foreground pixel, or no pixel scored at all.
        """
        true_hist, false_hist = self.gt_true_score_hist, self.gt_false_score_hist
        tp = true_hist[::-1].cumsum()
        fn = true_hist.sum() - tp
        fp = false_hist[::-1].cumsum()
        if ((tp + fn) <= 0).all():
            raise ValueError("no positive ground truth in the evaluated images")
        if ((tp + fp) <= 0).all():
            raise ValueError("no positive prediction in the evaluated images")
        scored = (tp + fp) != 0
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = tp / (tp + fp)
            recall = tp / (tp + fn)
        area = (precision[1:] * np.diff(recall))[scored[1:]].sum()
        return {"num_images": self.num_images, "PxAP": 100.0 * float(area),
                "curves": {"precision": np.nan_to_num(precision).tolist(),
                           "recall": recall.tolist()}}


def build_evaluator(metadata: SplitMetadata, *, cam_curve_interval: float = 0.001,
                    iou_threshold_list: Sequence[int] = (30, 50, 70), box_v2_metric: bool = True,
                    loc_threshold: float = 0.2, mask_root: str | None = None,
                    threshold_rule: str = "authors", pxap_histogram_dtype: str = "float64"
                    ) -> BoxEvaluator | MaskEvaluator:
    """The evaluator of a split: masks → :class:`MaskEvaluator`, boxes → :class:`BoxEvaluator`.

    ``box_v2_metric`` selects all-contour boxes (MaxBoxAccV2) or the largest contour (SPEC §7.5);
    ``pxap_histogram_dtype`` is the PxAP accumulator: ``float64`` (exact) or ``float32`` (the
    authors', SPEC A13).
    """
    if metadata.has_masks:
        if mask_root is None:
            raise ValueError(f"{metadata.dataset_name} is evaluated with masks: give mask_root")
        return MaskEvaluator(metadata, mask_root, cam_curve_interval, threshold_rule,
                             pxap_histogram_dtype)
    return BoxEvaluator(metadata, cam_curve_interval, iou_threshold_list,
                        multi_contour_eval=box_v2_metric, loc_threshold=loc_threshold,
                        threshold_rule=threshold_rule)


def _scoremap_path(scoremap_root: str, image_id: str) -> str:
    return os.path.join(scoremap_root, image_id + ".npy")


_NPY_FLOAT_MAP = re.compile(
    rb"\x93NUMPY\x01\x00(..)\{'descr': '(<f[48])', 'fortran_order': False, "
    rb"'shape': \((\d+), (\d+)\), \}", re.DOTALL)
"""Header of a version 1.0 ``.npy`` file of a C-order 2-D little-endian float map, as
``np.save`` writes it: the layout of score maps, read without ``np.load``'s general parser."""


def _load_scoremap(path: str) -> np.ndarray:
    """Read one ``.npy`` score map without pickles (read-only when it has the common layout).

    Raises:
        ScoreMapError: the file is not a readable ``.npy`` array (truncated, corrupt, pickled).
    """
    try:
        with open(path, "rb") as file:
            data = file.read()
        header = _NPY_FLOAT_MAP.match(data)
        if header:
            offset = 10 + int.from_bytes(header[1], "little")
            dtype = np.dtype(header[2].decode())
            shape = int(header[3]), int(header[4])
            if len(data) == offset + shape[0] * shape[1] * dtype.itemsize:
                return np.frombuffer(data, dtype, offset=offset).reshape(shape)
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError, SyntaxError, TokenError) as error:
        raise ScoreMapError(f"{path} is not a readable .npy array: {error}") from None


def _evaluate_chunk(evaluator: BoxEvaluator | MaskEvaluator, scoremap_root: str,
                    image_ids: Sequence[str], pred_correct: dict[str, bool] | None
                    ) -> tuple[dict, list[tuple[str, str]]]:
    """Accumulate maps read from disk into a reset ``evaluator``.

    Returns the evaluator's state and the ``(image_id, reason)`` of every map that failed.
    """
    evaluator.reset()
    failures = []
    for image_id in image_ids:
        try:
            scoremap = _load_scoremap(_scoremap_path(scoremap_root, image_id))
            correct = None if pred_correct is None else pred_correct[image_id]
            evaluator.accumulate(scoremap, image_id, correct)
        except (ScoreMapError, OSError, ValueError) as error:
            failures.append((image_id, str(error)))
    return evaluator.state_dict(), failures


def evaluate_scoremaps(evaluator: BoxEvaluator | MaskEvaluator, scoremap_root: str,
                       image_ids: Sequence[str], pred_correct: dict[str, bool] | None = None,
                       workers: int = 1, progress: bool = False) -> dict:
    """Evaluate ``{scoremap_root}/{image_id}.npy`` for every id, in ``workers`` processes.

    Raises:
        FileNotFoundError: some maps are missing (all are checked before any work).
        ScoreMapError: some maps are invalid (all are read before the error is raised).
    """
    missing = [i for i in image_ids if not os.path.isfile(_scoremap_path(scoremap_root, i))]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(image_ids)} score maps are missing under {scoremap_root}, "
            f"e.g. {[_scoremap_path(scoremap_root, i) for i in missing[:3]]}")
    failures: list[tuple[str, str]] = []
    with tqdm(total=len(image_ids), desc="evaluating score maps", unit="map",
              disable=not progress) as bar:
        if workers <= 1:
            _, failures = _evaluate_chunk(evaluator, scoremap_root, image_ids, pred_correct)
            bar.update(len(image_ids))
        else:
            evaluator.reset()
            warm_up()  # workers forked below inherit the compiled box passes
            template = evaluator.restricted(image_ids)
            chunks = _chunks(image_ids, workers * 8)
            with ProcessPoolExecutor(max_workers=workers, initializer=_start_worker,
                                     initargs=(template, scoremap_root, pred_correct)) as pool:
                for chunk, (state, chunk_failures) in zip(chunks,
                                                          pool.map(_evaluate_in_worker, chunks)):
                    evaluator.merge(state)
                    failures += chunk_failures
                    bar.update(len(chunk))
    if failures:
        examples = "; ".join(f"{i}: {reason}" for i, reason in failures[:3])
        raise ScoreMapError(f"{len(failures)} of {len(image_ids)} score maps are invalid, "
                            f"e.g. {examples} (score maps read from {scoremap_root})")
    return evaluator.compute()


def _chunks(items: Sequence[str], count: int) -> list[Sequence[str]]:
    size = max(1, -(-len(items) // count))
    return [items[i:i + size] for i in range(0, len(items), size)]


_WORKER: dict = {}


def _start_worker(evaluator: BoxEvaluator | MaskEvaluator, scoremap_root: str,
                  pred_correct: dict[str, bool] | None) -> None:
    """Keep the evaluator and settings in the worker process (sent once, not per chunk)."""
    _WORKER.update(evaluator=evaluator, scoremap_root=scoremap_root, pred_correct=pred_correct)


def _evaluate_in_worker(image_ids: Sequence[str]) -> tuple[dict, list[tuple[str, str]]]:
    return _evaluate_chunk(_WORKER["evaluator"], _WORKER["scoremap_root"], image_ids,
                           _WORKER["pred_correct"])
