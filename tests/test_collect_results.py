"""scripts/collect_results.py on small hand-written results files."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "collect_results.py"
_spec = importlib.util.spec_from_file_location("collect_results", SCRIPT)
collect_results = importlib.util.module_from_spec(_spec)
sys.modules["collect_results"] = collect_results
_spec.loader.exec_module(collect_results)


def _write(root: Path, experiment: str, method: str, structure: str, *, seed: int = 42,
           num_images: int = 80, max_images: int | None = None, gt_loc: float = 50.0,
           masks: bool = False, architecture: str = "resnet50") -> None:
    metrics = {"num_images": num_images, "num_skipped_images": 0, "top1_cls": 90.0}
    if masks:
        metrics["PxAP"] = gt_loc
    else:
        metrics.update({"top1_loc": gt_loc - 5, "gt_loc": gt_loc, "maxboxacc_v2": gt_loc + 5})
    settings = {"dataset_name": "SYNTHETIC_MASK" if masks else "SYNTHETIC", "split": "test",
                "architecture": architecture, "family": "cam" if method == "cam" else "grad",
                "method": method, "model_structure": structure, "max_images": max_images,
                "seed": seed, "experiment_name": experiment, "loc_threshold": 0.2,
                "log_folder": str(root / experiment), "checkpoint": "x.pth.tar"}
    folder = root / experiment
    folder.mkdir(parents=True, exist_ok=True)
    tag = method
    (folder / f"results_{tag}.json").write_text(
        json.dumps({"metrics": metrics, "settings": settings}), encoding="utf-8")


def _table(root: Path, *flags: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert collect_results.main([str(root), *flags]) == 0
    return capsys.readouterr().out.splitlines()


def _rows(lines: list[str]) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines
            if line.startswith("| ") and not line.startswith("| Backbone")]


def test_rows_name_the_method(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for method in ("cam", "gradcam", "layercam", "xgradcam"):
        _write(tmp_path, "vanilla", method, "vanilla", gt_loc=40.0)
        _write(tmp_path, "b2", method, "b2", gt_loc=55.0)
    rows = _rows(_table(tmp_path, capsys=capsys))
    labels = [row[1] for row in rows]
    assert labels == ["CAM", "CAM + Ours", "Grad-CAM", "Grad-CAM + Ours", "XGradCAM",
                      "XGradCAM + Ours", "LayerCAM", "LayerCAM + Ours"]
    assert all(row[0] == "ResNet50" for row in rows)
    assert rows[1][4:] == ["50.00 (+15.00)", "55.00 (+15.00)", "60.00 (+15.00)"]
    assert rows[1][3] == "90.00"  # Top-1 Cls: no change shown


def test_no_change_between_runs_on_different_images(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, "vanilla", "cam", "vanilla", num_images=80, gt_loc=40.0)
    _write(tmp_path, "b2", "cam", "b2", num_images=40, max_images=40, gt_loc=55.0)
    lines = _table(tmp_path, capsys=capsys)
    rows = _rows(lines)
    assert [row[:3] for row in rows] == [["ResNet50", "CAM", "80"],
                                         ["ResNet50", "CAM + Ours", "40 †"]]
    assert rows[1][4:] == ["50.00", "55.00", "60.00"]
    assert any("partial evaluation" in line for line in lines)


def test_partial_runs_on_the_same_images_are_compared(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, "vanilla", "cam", "vanilla", num_images=40, max_images=40, gt_loc=40.0)
    _write(tmp_path, "b2", "cam", "b2", num_images=40, max_images=40, gt_loc=41.5)
    rows = _rows(_table(tmp_path, capsys=capsys))
    assert rows[0][2] == rows[1][2] == "40 †"
    assert rows[1][5] == "41.50 (+1.50)"


def test_two_experiments_of_one_method_are_told_apart(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, "b2_lr_low", "cam", "b2")
    _write(tmp_path, "b2_lr_high", "cam", "b2")
    labels = [row[1] for row in _rows(_table(tmp_path, capsys=capsys))]
    assert len(set(labels)) == 2
    assert all(label.startswith("CAM + Ours (") for label in labels)


def test_over_seeds_gives_mean_std_and_paired_changes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for seed, (vanilla, branch) in zip((1, 2, 3), ((40.0, 50.0), (42.0, 54.0), (44.0, 52.0))):
        _write(tmp_path, f"seed{seed}/vanilla", "cam", "vanilla", seed=seed, gt_loc=vanilla,
               masks=True)
        _write(tmp_path, f"seed{seed}/b2", "cam", "b2", seed=seed, gt_loc=branch, masks=True)
    rows = _rows(_table(tmp_path, "--over_seeds", capsys=capsys))
    assert [row[:4] for row in rows] == [["ResNet50", "CAM", "80", "3"],
                                         ["ResNet50", "CAM + Ours", "80", "3"]]
    # PxAP: vanilla 42 ± 2; branch 52 ± 2; per-seed changes 10, 12, 8.
    assert rows[0][5] == "42.00 ± 2.00"
    assert rows[1][5] == "52.00 ± 2.00 (+10.00 ± 2.00)"


def test_over_seeds_refuses_a_repeated_seed(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, "a", "cam", "vanilla", seed=1)
    _write(tmp_path, "b", "cam", "vanilla", seed=1)
    assert collect_results.main([str(tmp_path), "--over_seeds"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --over_seeds:") and "\n" not in error


def test_backbone_names_come_from_the_registry() -> None:
    assert collect_results.backbone_name("inception_v3") == "InceptionV3"
    assert collect_results.backbone_name("tiny_cnn") == "TinyCNN"
    assert collect_results.backbone_name("no_such_net") == "no_such_net"


def test_bad_inputs_give_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert collect_results.main([str(tmp_path)]) == 1
    assert "no results_*.json" in capsys.readouterr().err
    (tmp_path / "results_cam.json").write_text("{", encoding="utf-8")
    assert collect_results.main([str(tmp_path)]) == 1
    error = capsys.readouterr().err.strip()
    assert "results_cam.json: not valid JSON" in error and "\n" not in error
    assert collect_results.main([str(tmp_path / "missing")]) == 1
    assert "not a folder" in capsys.readouterr().err


def test_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, "vanilla", "cam", "vanilla")
    output = tmp_path / "table.md"
    assert collect_results.main([str(tmp_path), "--output", str(output)]) == 0
    assert output.read_text(encoding="utf-8") == capsys.readouterr().out
