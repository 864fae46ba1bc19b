"""PxAP on the real OpenImages masks of tests/fixtures/test_masks (SPEC §7.10)."""

import os

import numpy as np
import pytest

from wsol.data.metadata import load_metadata
from wsol.metrics.evaluation import MaskEvaluator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MASK_ROOT = os.path.join(ROOT, "tests", "fixtures", "test_masks")
METADATA = load_metadata(os.path.join(ROOT, "metadata"), "OpenImages", "val")

CASES = {  # image id: (foreground, background, ignore) pixels
    "val/0bt_c3/1cd9ac0169ec7df0.jpg": (43031, 7145, 0),
    "val/0bt_c3/3a29f0b33894d4a6.jpg": (833, 49343, 0),
    "val/0bt_c3/3b3b9931325d65c9.jpg": (347, 13910, 35919),
}


def _pxap(image_id: str, scoremap: np.ndarray) -> float:
    evaluator = MaskEvaluator(METADATA, MASK_ROOT, cam_curve_interval=0.01)
    evaluator.accumulate(scoremap.astype(np.float32), image_id)
    return evaluator.compute()["PxAP"]


@pytest.mark.parametrize("image_id", sorted(CASES))
def test_mask_pixel_counts(image_id: str) -> None:
    mask = MaskEvaluator(METADATA, MASK_ROOT).gt_mask(image_id)
    counts = ((mask == 1).sum(), (mask == 0).sum(), (mask == 255).sum())
    assert counts == CASES[image_id]


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("image_id", sorted(CASES))
def test_constant_map_gives_foreground_ratio(image_id: str, value: float) -> None:
    foreground, background, _ = CASES[image_id]
    expected = 100 * foreground / (foreground + background)
    assert _pxap(image_id, np.full((224, 224), value)) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("ignore_value", [0.0, 1.0])
@pytest.mark.parametrize("image_id", sorted(CASES))
def test_perfect_map_gives_100(image_id: str, ignore_value: float) -> None:
    mask = MaskEvaluator(METADATA, MASK_ROOT).gt_mask(image_id)
    scoremap = np.where(mask == 1, 1.0, np.where(mask == 255, ignore_value, 0.0))
    assert _pxap(image_id, scoremap) == pytest.approx(100.0, abs=1e-9)


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_empty_foreground_raises(value: float) -> None:
    with pytest.raises(ValueError, match="no positive ground truth"):
        _pxap("val/0by6g/490365f63135f3e0.jpg", np.full((224, 224), value))


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_full_foreground_gives_100(value: float) -> None:
    assert _pxap("val/0by6g/b4d953e7105da1d8.jpg", np.full((224, 224), value)) == 100.0


def test_merge_equals_single_pass() -> None:
    rng = np.random.default_rng(0)
    maps = {image_id: rng.random((224, 224), dtype=np.float32) for image_id in CASES}
    whole = MaskEvaluator(METADATA, MASK_ROOT)
    parts = [MaskEvaluator(METADATA, MASK_ROOT) for _ in range(2)]
    for index, (image_id, scoremap) in enumerate(maps.items()):
        whole.accumulate(scoremap, image_id)
        parts[index % 2].accumulate(scoremap, image_id)
    parts[0].merge(parts[1].state_dict())
    assert parts[0].compute()["PxAP"] == whole.compute()["PxAP"]


def test_histogram_equals_numpy_histogram() -> None:
    evaluator = MaskEvaluator(METADATA, MASK_ROOT, cam_curve_interval=0.001)
    rng = np.random.default_rng(1)
    scores = np.concatenate([rng.random(5000).astype(np.float32),
                             np.float32(np.arange(1001) / 1000), np.float32([0.0, 1.0])])
    expected, _ = np.histogram(scores, bins=evaluator.edges)
    np.testing.assert_array_equal(evaluator._histogram(scores), expected)


def test_missing_mask_file_names_the_path(tmp_path: str) -> None:
    evaluator = MaskEvaluator(METADATA, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="1cd9ac0169ec7df0_m0bt_c3_6932e993.png"):
        evaluator.accumulate(np.zeros((224, 224), np.float32), "val/0bt_c3/1cd9ac0169ec7df0.jpg")
