"""End-to-end pipeline on a tiny synthetic dataset: train, fine-tune the branch, evaluate, resume.

The registered `tiny_cnn`, like ResNet50, shares every parameter between the two model families
(SPEC §3.1), so one vanilla backbone serves CAM (CAM family) and Grad-CAM (gradient family); the
sigmoid branch is trained in the gradient family.
Training runs at 32 px to stay fast; evaluation runs in the fixed 224 frame.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import main
import train
from data_loaders import WSOLDataset, build_transform
from wsol import evaluation
from wsol.data.metadata import load_metadata
from wsol.data.synthetic import generate_synthetic_dataset
from wsol.models.checkpoints import load_training_checkpoint
from wsol.models.registry import build_model

NUM_TRAIN, NUM_TEST = 16, 8
VANILLA_EPOCHS = 10
SMALL = ["--crop_size", "32", "--resize_size", "32", "--batch_size", "16"]



@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    generate_synthetic_dataset(str(root / "dataset"), str(root / "metadata"),
                               num_train=NUM_TRAIN, num_val=4, num_test=NUM_TEST, image_size=64)
    return root


def _flags(workspace: Path, dataset: str = "SYNTHETIC") -> list[str]:
    return ["--dataset_name", dataset, "--data_root", str(workspace / "dataset"),
            "--metadata_root", str(workspace / "metadata"), "--mask_root",
            str(workspace / "dataset"), "--root", str(workspace / "exp"), "--architecture",
            "tiny_cnn", "--batch_size", "8", "--workers", "0", "--device", "cpu"]


def _train(workspace: Path, name: str, *extra: str) -> Path:
    argv = _flags(workspace) + SMALL + ["--experiment_name", name, "--pretrained", "false",
                                        *extra]
    assert main.main(argv) == 0
    return workspace / "exp" / name


def _vanilla_flags() -> list[str]:
    """One full batch per epoch, so epoch 1's loss is the untrained model's loss."""
    return ["--method", "cam", "--epoch", str(VANILLA_EPOCHS), "--lr", "0.003",
            "--lr_decay_frequency", "20", "--checkpoint_interval", "5"]


def _evaluate(workspace: Path, name: str, method: str, structure: str, *extra: str,
              dataset: str = "SYNTHETIC") -> dict:
    argv = _flags(workspace, dataset) + ["--experiment_name", name, "--method", method,
                                         "--model_structure", structure, "--eval_only",
                                         "--num_overlays", "2", *extra]
    assert main.main(argv) == 0
    tag = method if "--split" not in extra else f"{method}_{extra[extra.index('--split') + 1]}"
    return json.loads((workspace / "exp" / name / f"results_{tag}.json").read_text())


@pytest.fixture(scope="module")
def vanilla(workspace: Path) -> Path:
    return _train(workspace, "vanilla", *_vanilla_flags())


@pytest.fixture(scope="module")
def b2(workspace: Path, vanilla: Path) -> Path:
    return _train(workspace, "b2", "--method", "gradcam", "--epochs", "1", "--lr", "0.01",
                  "--model_structure", "b2", "--unfreeze_layer", "branch2",
                  "--ft_ckpt", str(vanilla / "last_checkpoint.pth.tar"))


@pytest.fixture(scope="module")
def box_results(workspace: Path, vanilla: Path, b2: Path) -> dict[tuple[str, str], dict]:
    results = {}
    for method in ("cam", "gradcam"):
        results[(method, "vanilla")] = _evaluate(workspace, "vanilla", method, "vanilla")
        results[(method, "b2")] = _evaluate(workspace, "b2", method, "b2", "--save_scoremaps")
    return results


def _state(path: Path) -> dict[str, torch.Tensor]:
    return load_training_checkpoint(path / "last_checkpoint.pth.tar")["state_dict"]


def _metric_rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "train_metrics.jsonl").read_text().splitlines()]


def test_training_writes_checkpoints_reports_and_config(vanilla: Path) -> None:
    files = {p.name for p in vanilla.iterdir()}
    assert {"5_checkpoint.pth.tar", "last_checkpoint.pth.tar", "config.json", "train.log",
            "train_metrics.jsonl", "latest_checkpoint.json"} <= files
    assert "1_checkpoint.pth.tar" not in files  # --checkpoint_interval 5
    checkpoint = load_training_checkpoint(vanilla / "last_checkpoint.pth.tar")
    assert checkpoint["epoch"] == VANILLA_EPOCHS and checkpoint["format_version"] == 1
    assert not any(key.startswith("module.") for key in checkpoint["state_dict"])
    assert checkpoint["config"]["epochs"] == VANILLA_EPOCHS
    report = json.loads((vanilla / "reports_train" / f"{VANILLA_EPOCHS}.json").read_text())
    assert set(report) == {"summary", "step", "train/classification", "train/loss"}
    rows = _metric_rows(vanilla)
    assert [row["epoch"] for row in rows] == list(range(1, VANILLA_EPOCHS + 1))
    assert all(row["num_images"] == NUM_TRAIN for row in rows)


def test_the_vanilla_model_learns(vanilla: Path) -> None:
    """One full batch per epoch: epoch 1 scores the untrained model, the last the trained one."""
    rows = _metric_rows(vanilla)
    untrained, trained = rows[0], rows[-1]
    assert trained["loss"] < 0.75 * untrained["loss"]
    assert trained["accuracy"] >= 50.0 > untrained["accuracy"]


def test_branch_training_leaves_backbone_and_softmax_head_bitwise_unchanged(
        vanilla: Path, b2: Path) -> None:
    before, after = _state(vanilla), _state(b2)
    assert set(after) - set(before) == {"fc2.weight", "fc2.bias"}
    changed = [key for key in before if not torch.equal(before[key], after[key])]
    assert changed == []


def test_box_metrics_are_consistent(box_results: dict[tuple[str, str], dict]) -> None:
    for metrics in (result["metrics"] for result in box_results.values()):
        assert metrics["num_images"] == NUM_TEST
        for key in ("top1_cls", "top1_loc", "gt_loc", "maxboxacc_v2", "maxboxacc_IOU_30",
                    "maxboxacc_IOU_50", "maxboxacc_IOU_70"):
            assert 0.0 <= metrics[key] <= 100.0
            assert (metrics[key] * NUM_TEST / 100).is_integer() or key == "maxboxacc_v2"
        assert metrics["top1_loc"] <= metrics["gt_loc"]
        assert metrics["maxboxacc_IOU_70"] <= metrics["maxboxacc_IOU_50"] <= metrics[
            "maxboxacc_IOU_30"]
    top1 = {key: result["metrics"]["top1_cls"] for key, result in box_results.items()}
    assert len(set(top1.values())) == 1, top1  # frozen softmax head, shared ResNet50
    assert "top1_cls_branch2" in box_results[("cam", "b2")]["metrics"]


def test_top1_cls_matches_an_independent_forward_pass(workspace: Path, vanilla: Path,
                                                      box_results: dict) -> None:
    metadata = load_metadata(str(workspace / "metadata"), "SYNTHETIC", "test")
    dataset = WSOLDataset(str(workspace / "dataset"), metadata, build_transform("test"))
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    labels = torch.tensor([dataset[i][1] for i in range(len(dataset))])
    model = build_model("tiny_cnn", "cam", 4)
    model.load_state_dict(_state(vanilla))
    with torch.no_grad():
        correct = (model.eval()(images)["logits"].argmax(dim=1) == labels).float().mean()
    assert box_results[("cam", "vanilla")]["metrics"]["top1_cls"] == pytest.approx(
        100 * correct.item())


@pytest.mark.parametrize("method", ["cam", "gradcam"])
def test_saved_scoremaps_recompute_to_the_same_metrics(workspace: Path, b2: Path,
                                                       box_results: dict, method: str,
                                                       tmp_path: Path) -> None:
    scoremaps = b2 / f"scoremaps_{method}"
    maps = sorted(scoremaps.rglob("*.npy"))
    assert len(maps) == NUM_TEST
    assert all(np.load(p).dtype == np.float32 and np.load(p).shape == (224, 224) for p in maps)
    output = tmp_path / "recomputed.json"
    evaluation.main(["--scoremap_root", str(scoremaps), "--metadata_root",
                     str(workspace / "metadata"), "--dataset_name", "SYNTHETIC", "--split",
                     "test", "--pred_correct", str(scoremaps / "pred_correct.csv"),
                     "--output", str(output)])
    recomputed = json.loads(output.read_text())
    metrics = box_results[(method, "b2")]["metrics"]
    for key in ("maxboxacc_v2", "gt_loc", "top1_loc", "maxboxacc_IOU_50"):
        assert recomputed[key] == pytest.approx(metrics[key]), key
    assert (b2 / f"overlays_{method}").is_dir()
    assert len(list((b2 / f"overlays_{method}").rglob("*.png"))) == 2


def test_mask_dataset_reports_pxap_and_recomputes(workspace: Path, b2: Path,
                                                  tmp_path: Path) -> None:
    result = _evaluate(workspace, "b2_masks", "cam", "b2", "--save_scoremaps", "--ft_ckpt",
                       str(b2 / "last_checkpoint.pth.tar"), dataset="SYNTHETIC_MASK")
    metrics = result["metrics"]
    assert set(metrics) == {"num_images", "num_nonfinite_heatmaps", "num_skipped_images",
                            "top1_cls", "top1_cls_branch2", "PxAP"}
    assert metrics["num_nonfinite_heatmaps"] == 0
    assert 0.0 < metrics["PxAP"] <= 100.0
    folder = workspace / "exp" / "b2_masks" / "scoremaps_cam"
    output = tmp_path / "pxap.json"
    evaluation.main(["--scoremap_root", str(folder), "--metadata_root",
                     str(workspace / "metadata"), "--dataset_name", "SYNTHETIC_MASK",
                     "--split", "test", "--mask_root", str(workspace / "dataset"),
                     "--output", str(output)])
    assert json.loads(output.read_text())["PxAP"] == pytest.approx(metrics["PxAP"])


def test_fidelity_metrics_are_reported(workspace: Path, vanilla: Path) -> None:
    metrics = _evaluate(workspace, "vanilla", "gradcam", "vanilla", "--split", "val",
                        "--max_images", "1", "--fidelity_metrics", "--num_overlays", "0")["metrics"]
    assert metrics["num_images"] == 1
    for key in ("avg_drop", "increase_in_confidence", "insertion_auc", "deletion_auc"):
        assert 0.0 <= metrics[key] <= 100.0, key


def test_resume_after_an_interruption_matches_the_uninterrupted_run(
        workspace: Path, vanilla: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = train.train_one_epoch

    def interrupted(*args: object, **kwargs: object) -> dict:
        if args[5] == 7:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(train, "train_one_epoch", interrupted)
    argv = _flags(workspace) + SMALL + ["--experiment_name", "resumed", "--pretrained", "false",
                                        *_vanilla_flags()]
    assert main.main(argv) == main.INTERRUPTED  # Ctrl-C: a line naming the resume command
    monkeypatch.setattr(train, "train_one_epoch", original)
    resumed = _train(workspace, "resumed", *_vanilla_flags(), "--resume", "auto")
    reference = load_training_checkpoint(vanilla / "last_checkpoint.pth.tar")
    final = load_training_checkpoint(resumed / "last_checkpoint.pth.tar")
    assert final["epoch"] == reference["epoch"] == VANILLA_EPOCHS
    assert [row["epoch"] for row in _metric_rows(resumed)] == list(range(1, VANILLA_EPOCHS + 1))
    for key, value in reference["state_dict"].items():
        assert torch.equal(value, final["state_dict"][key]), key
    for index, buffers in reference["optimizer"]["state"].items():
        assert torch.equal(buffers["momentum_buffer"],
                           final["optimizer"]["state"][index]["momentum_buffer"])
    assert torch.equal(reference["rng"]["torch"], final["rng"]["torch"])


def test_existing_experiment_and_results_are_not_overwritten(
        workspace: Path, box_results: dict, capsys: pytest.CaptureFixture[str]) -> None:
    folder = workspace / "exp" / "occupied"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("keep")
    argv = _flags(workspace) + ["--experiment_name", "occupied", "--epochs", "0",
                                "--pretrained", "false"]
    assert main.main(argv) == 1
    assert "--override_cache" in capsys.readouterr().err
    assert main.main(argv + ["--override_cache"]) == 0
    assert not (folder / "notes.txt").exists()
    assert load_training_checkpoint(folder / "last_checkpoint.pth.tar")["epoch"] == 0
    evaluation_argv = _flags(workspace) + ["--experiment_name", "vanilla", "--eval_only"]
    assert main.main(evaluation_argv) == 1
    assert "results_cam.json already exists" in capsys.readouterr().err


def test_failures_before_the_start_leave_no_folder(workspace: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    resume = _flags(workspace) + ["--experiment_name", "never_trained", "--epochs", "1",
                                  "--pretrained", "false", "--resume", "auto"]
    assert main.main(resume) == 1
    assert "no completed epoch" in capsys.readouterr().err
    evaluation = _flags(workspace) + ["--experiment_name", "never_trained", "--eval_only"]
    assert main.main(evaluation) == 1
    assert "no checkpoint to evaluate" in capsys.readouterr().err
    assert not (workspace / "exp" / "never_trained").exists()


def test_mismatching_checkpoint_is_rejected_before_evaluation(
        workspace: Path, vanilla: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = _flags(workspace) + ["--experiment_name", "vanilla", "--eval_only", "--split", "val",
                                "--model_structure", "b2"]
    assert main.main(argv) == 1
    assert "model_structure" in capsys.readouterr().err
    assert not (vanilla / "results_cam_val.json").exists()


def test_non_finite_loss_stops_training(workspace: Path) -> None:
    with pytest.raises(FloatingPointError, match=r"epoch \d+, step \d+"):
        _train(workspace, "diverging", "--method", "cam", "--epochs", "3", "--lr", "1e12")
