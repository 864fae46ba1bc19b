"""Every figure and curve of the shipped reference fixtures, reproduced exactly.

The fixtures (tests/fixtures/wsol_reference, see its README) hold score maps on real image ids
and the counters that wsolevaluation and the authors' evaluator compute for them. Runs of the
``wsolevaluation`` kind use its threshold list and float64 maps; runs of the authors' kind use
the rounded list (with 1.0) and float32 maps.
"""

import json
import os
from functools import cache

import numpy as np
import pytest

from wsol.data.metadata import load_metadata
from wsol.metrics.boxes import quantize
from wsol.metrics.component_tree import CutoffIous, cutoff_ious
from wsol.metrics.evaluation import BoxEvaluator, MaskEvaluator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "wsol_reference")
METADATA = os.path.join(ROOT, "metadata")
BOX_SETS = ["cub_test_300", "ilsvrc_val_300", "ilsvrc_test_300", "ilsvrc_val_edge_101"]
IOUS = (30, 50, 70)


@cache
def _fixture(name: str) -> tuple[dict, dict]:
    with open(os.path.join(FIXTURES, name + ".expected.json"), encoding="utf-8") as handle:
        expected = json.load(handle)
    with np.load(os.path.join(FIXTURES, name + ".npz")) as data:
        arrays = {key: data[key] for key in ("image_ids", "scoremaps", "pred_correct")}
    arrays["image_ids"] = [str(i) for i in arrays["image_ids"]]
    return expected, arrays


@cache
def _metadata(dataset: str, split: str):
    return load_metadata(METADATA, dataset, split)


@cache
def _per_cutoff(name: str, rule: str) -> list[tuple[np.ndarray, CutoffIous]]:
    """Quantised maps and their per-cutoff IoUs, shared by the runs of both intervals (the
    thresholds only pick cutoffs; ``test_headline_figures`` runs the whole path per map)."""
    expected, arrays = _fixture(name)
    evaluator = BoxEvaluator(_metadata(expected["dataset"], expected["split"]))
    dtype = np.float64 if rule == "wsolevaluation" else np.float32
    results = []
    for scoremap, image_id in zip(arrays["scoremaps"], arrays["image_ids"]):
        q = quantize(scoremap.astype(dtype))
        results.append((q, cutoff_ious(q, evaluator.gt_boxes(image_id))))
    return results


def _rule(run: dict) -> str:
    return "wsolevaluation" if run["evaluator"].startswith("wsolevaluation") else "authors"


def _runs(expected: dict, interval: float, rule: str) -> dict[bool, dict]:
    return {run.get("multi_contour_eval", False): run for run in expected["runs"]
            if run["cam_curve_interval"] == interval and _rule(run) == rule}


@pytest.mark.parametrize("interval", [0.001, 0.01])
@pytest.mark.parametrize("rule", ["wsolevaluation", "authors"])
@pytest.mark.parametrize("name", BOX_SETS)
def test_box_counters_match_reference(name: str, rule: str, interval: float) -> None:
    expected, arrays = _fixture(name)
    metadata = _metadata(expected["dataset"], expected["split"])
    runs = _runs(expected, interval, rule)
    evaluators = {multi: BoxEvaluator(metadata, interval, IOUS, multi, threshold_rule=rule)
                  for multi in runs}
    per_image = []
    for index, (q, found) in enumerate(_per_cutoff(name, rule)):
        ious = evaluators[True].ious_at_thresholds(q, found)
        correct = bool(arrays["pred_correct"][index]) if rule == "authors" else None
        for evaluator in evaluators.values():
            evaluator.accumulate_ious(ious, correct)
        per_image.append(ious)

    for multi, run in runs.items():
        evaluator, results = evaluators[multi], evaluators[multi].compute()
        assert results["num_images"] == run["num_images"]
        for k, delta in enumerate(IOUS):
            assert evaluator.num_correct[k].tolist() == run["num_correct"][str(delta)]
            assert results[f"maxboxacc_IOU_{delta}"] == run["max_box_acc"][str(delta)]
        if multi:
            assert results["maxboxacc_v2"] == pytest.approx(run["max_box_acc_mean"], abs=1e-12)
        if rule == "authors":
            for k, delta in enumerate(IOUS):
                assert evaluator.num_correct_gt_known[k].tolist() == \
                    run["num_correct_gt_loc"][str(delta)]
                assert evaluator.num_correct_top1[k].tolist() == \
                    run["num_correct_top1_loc"][str(delta)]
            assert evaluator.loc_threshold_index == run["loc_threshold_index"]
            assert results["gt_loc"] == run["gt_known_loc"]
            assert results["top1_loc"] == run["top1_loc"]
        if "per_image_num_correct_thresholds" in run:
            key = "multi" if multi else "single_any"
            counts = [[int((ious[key] >= d / 100).sum()) for d in IOUS] for ious in per_image]
            assert counts == run["per_image_num_correct_thresholds"]

    if rule == "wsolevaluation" and interval == 0.001:
        rows = [[int(i["num_boxes"].sum()), i["multi"].sum(), len(i["single_any"]),
                 i["single_any"].sum()] for i in per_image]
        np.testing.assert_allclose(rows, expected["per_image_fingerprint"]["rows"], atol=2e-9)


@pytest.mark.parametrize("name", BOX_SETS)
def test_headline_figures(name: str) -> None:
    """MaxBoxAccV2, GT-known and Top-1 Loc at 0.01 with the default (authors') settings."""
    expected, arrays = _fixture(name)
    metadata = _metadata(expected["dataset"], expected["split"])
    evaluator = BoxEvaluator(metadata, 0.01)
    evaluator.accumulate_batch(arrays["scoremaps"], arrays["image_ids"], arrays["pred_correct"])
    results = evaluator.compute()
    headline = expected["headline"]
    assert results["maxboxacc_v2"] == pytest.approx(headline["MaxBoxAccV2@0.01"], abs=1e-12)
    assert results["gt_loc"] == pytest.approx(headline["GT-known Loc@0.01"], abs=1e-12)
    assert results["top1_loc"] == pytest.approx(headline["Top-1 Loc@0.01"], abs=1e-12)
    for delta in IOUS:
        assert results[f"maxboxacc_IOU_{delta}"] == \
            pytest.approx(headline["MaxBoxAccV2_per_iou@0.01"][str(delta)], abs=1e-12)


def test_gt_boxes_in_evaluation_frame() -> None:
    expected, arrays = _fixture("ilsvrc_val_edge_101")
    evaluator = BoxEvaluator(_metadata("ILSVRC", "val"))
    boxes_224 = expected["per_image_fingerprint"]["gt_boxes_224"]
    for image_id, boxes in zip(arrays["image_ids"], boxes_224):
        assert evaluator.gt_boxes(image_id).tolist() == boxes


@pytest.mark.parametrize("interval", [0.001, 0.01])
@pytest.mark.parametrize("rule", ["wsolevaluation", "authors"])
def test_pxap_matches_reference(rule: str, interval: float) -> None:
    expected, arrays = _fixture("openimages_val_100")
    (run,) = _runs(expected, interval, rule).values()
    metadata = _metadata("OpenImages", "val")
    histogram_dtype = "float64" if rule == "wsolevaluation" else "float32"
    evaluator = MaskEvaluator(metadata, os.path.join(FIXTURES, "openimages_val_masks"),
                              interval, rule, histogram_dtype)
    dtype = np.float64 if rule == "wsolevaluation" else np.float32
    for index, image_id in enumerate(arrays["image_ids"]):
        evaluator.accumulate(arrays["scoremaps"][index].astype(dtype), image_id)
    results = evaluator.compute()
    assert results["PxAP"] == run["pxap"]
    if "gt_true_score_hist" in run:
        assert evaluator.gt_true_score_hist.tolist() == run["gt_true_score_hist"]
        assert evaluator.gt_false_score_hist.tolist() == run["gt_false_score_hist"]
    if "per_image_mask_pixels_fg_bg_ignore" in run:
        counts = []
        for image_id in arrays["image_ids"]:
            mask = evaluator.gt_mask(image_id)
            counts.append([int((mask == value).sum()) for value in (1, 0, 255)])
        assert counts == run["per_image_mask_pixels_fg_bg_ignore"]
