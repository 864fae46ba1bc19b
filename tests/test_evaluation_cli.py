"""`python -m wsol.evaluation` flags: help, progress on a terminal only, --box_v2_metric false
(SPEC §7.5) and the authors' float32 PxAP, also through main.py's config and results."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import config
import inference
from wsol.data.metadata import load_metadata
from wsol.engine import terminal
from wsol.evaluation import _parser, main
from wsol.metrics.evaluation import BoxEvaluator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METADATA_ROOT = os.path.join(ROOT, "metadata")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "wsol_reference")
NUM = 12


def _write_maps(root: str, name: str, num: int) -> list[str]:
    with np.load(os.path.join(FIXTURES, name + ".npz")) as data:
        ids = [str(i) for i in data["image_ids"][:num]]
        maps = data["scoremaps"][:num]
    for image_id, scoremap in zip(ids, maps):
        path = os.path.join(root, image_id + ".npy")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        np.save(path, scoremap)
    return ids


def _ids_file(folder: str, ids: list[str]) -> str:
    path = os.path.join(folder, "ids.txt")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(ids) + "\n")
    return path


def test_every_flag_has_help_and_help_shows_defaults() -> None:
    parser = _parser()
    undocumented = [action.dest for action in parser._actions if not action.help]
    assert undocumented == []
    text = parser.format_help()
    assert "(default: 0.001)" in text and "(default: float64)" in text


def test_progress_bar_follows_the_terminal(monkeypatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert not terminal.on_terminal()
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert terminal.on_terminal()


def test_piped_command_prints_no_progress_bar(tmp_path) -> None:
    ids = _write_maps(str(tmp_path / "maps"), "cub_test_300", 3)
    command = [sys.executable, "-m", "wsol.evaluation", "--scoremap_root", str(tmp_path / "maps"),
               "--metadata_root", METADATA_ROOT, "--dataset_name", "CUB", "--split", "test",
               "--image_ids", _ids_file(str(tmp_path), ids), "--cam_curve_interval", "0.01",
               "--output", str(tmp_path / "results.json")]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    assert "evaluating score maps" not in finished.stderr
    assert json.loads((tmp_path / "results.json").read_text())["num_images"] == 3


def test_largest_contour_metric_is_also_maxboxacc_v2() -> None:
    with np.load(os.path.join(FIXTURES, "cub_test_300.npz")) as data:
        ids = [str(i) for i in data["image_ids"][:NUM]]
        maps = data["scoremaps"][:NUM]
    evaluator = BoxEvaluator(load_metadata(METADATA_ROOT, "CUB", "test"), 0.01,
                             multi_contour_eval=False)
    evaluator.accumulate_batch(maps, ids)
    results = evaluator.compute()
    assert results["maxboxacc_v2"] == results["maxboxacc"] == results["maxboxacc_IOU_50"]
    assert results["box_v2_metric"] is False
    evaluator = BoxEvaluator(load_metadata(METADATA_ROOT, "CUB", "test"), 0.01)
    evaluator.accumulate_batch(maps, ids)
    assert evaluator.compute()["box_v2_metric"] is True


def test_command_line_box_v2_metric_false(tmp_path) -> None:
    ids = _write_maps(str(tmp_path / "maps"), "cub_test_300", NUM)
    output = tmp_path / "results.json"
    main(["--scoremap_root", str(tmp_path / "maps"), "--metadata_root", METADATA_ROOT,
          "--dataset_name", "CUB", "--split", "test", "--image_ids",
          _ids_file(str(tmp_path), ids), "--cam_curve_interval", "0.01", "--box_v2_metric",
          "false", "--output", str(output)])
    results = json.loads(output.read_text())
    assert results["maxboxacc_v2"] == results["maxboxacc"] == results["maxboxacc_IOU_50"]
    assert results["settings"]["multi_contour_eval"] is False


def test_results_json_reports_maxboxacc_v2_without_v2() -> None:
    computed = {"maxboxacc": 61.5, "maxboxacc_v2": 61.5, "maxboxacc_IOU_50": 61.5,
                "gt_loc": 40.0, "top1_loc": 30.0, "gt_loc_any_box": 45.0,
                "top1_loc_any_box": 35.0}
    cfg = SimpleNamespace(box_v2_metric=False, loc_gt_boxes="first", iou_threshold_list=[50],
                          epochs=1, split="test")
    metrics = inference._metrics(cfg, inference._Counts(images=4, correct=3), computed)
    assert metrics["maxboxacc_v2"] == metrics["maxboxacc"] == 61.5
    assert inference._report(cfg, metrics)["test/maxboxacc_v2"] == 61.5


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_command_line_pxap_histogram_dtype(tmp_path, dtype: str) -> None:
    with open(os.path.join(FIXTURES, "openimages_val_100.expected.json"), encoding="utf-8") as f:
        runs = json.load(f)["runs"]
    rule = "authors" if dtype == "float32" else "wsolevaluation"
    (expected,) = [run["pxap"] for run in runs if run["cam_curve_interval"] == 0.01
                   and run["evaluator"].startswith("wsolevaluation") == (rule != "authors")]
    with np.load(os.path.join(FIXTURES, "openimages_val_100.npz")) as data:
        ids = [str(i) for i in data["image_ids"]]
        maps = data["scoremaps"].astype(np.float32 if dtype == "float32" else np.float64)
    for image_id, scoremap in zip(ids, maps):
        path = tmp_path / "maps" / (image_id + ".npy")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, scoremap)
    (tmp_path / "masks").mkdir()
    os.symlink(os.path.join(FIXTURES, "openimages_val_masks"), tmp_path / "masks" / "OpenImages")
    output = tmp_path / "results.json"
    main(["--scoremap_root", str(tmp_path / "maps"), "--metadata_root", METADATA_ROOT,
          "--dataset_name", "OpenImages", "--split", "val", "--mask_root",
          str(tmp_path / "masks"), "--image_ids", _ids_file(str(tmp_path), ids),
          "--cam_curve_interval", "0.01", "--threshold_rule", rule, "--pxap_histogram_dtype",
          dtype, "--output", str(output)])
    results = json.loads(output.read_text())
    assert results["settings"]["histogram_dtype"] == dtype
    assert results["PxAP"] == expected


def test_main_config_takes_pxap_histogram_dtype() -> None:
    args = config.build_parser().parse_args(["--pxap_histogram_dtype", "float32"])
    assert args.pxap_histogram_dtype == "float32"
    assert config.build_parser().parse_args([]).pxap_histogram_dtype == "float64"
