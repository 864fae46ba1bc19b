"""A newcomer's first hour: failed starts, files that are not checkpoints, corrupt images with
loader workers, Ctrl-C, logs, help texts and the model read from the checkpoint.

Everything runs the registered `tiny_cnn` backbone on a few 32-pixel synthetic images.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import main
import train
from cam import compute_heatmaps
from cam.heatmaps import main as heatmaps_main
from cam.heatmaps import overlay, preprocess
from config import ConfigError, build_parser, get_config
from data_loaders import get_data_loader
from wsol.data.metadata import MetadataError, load_metadata
from wsol.data.synthetic import generate_synthetic_dataset
from wsol.data.synthetic import main as synthetic_main
from wsol.models.checkpoints import (
    CheckpointMismatchError,
    CheckpointReadError,
    load_finetune_checkpoint,
    load_model_checkpoint,
    load_torchvision_weights,
    load_training_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from wsol.models.registry import build_model
from wsol.report.overlays import blend_heatmap, rgb_to_bgr

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
TIMEOUT = 120
HTML_PAGE = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head></html>\n"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("first_hour")
    generate_synthetic_dataset(str(root / "dataset"), str(root / "metadata"), num_train=16,
                               num_val=0, num_test=4, image_size=64)
    return root


def _flags(workspace: Path, name: str, *extra: str) -> list[str]:
    return ["--dataset_name", "SYNTHETIC", "--data_root", str(workspace / "dataset"),
            "--metadata_root", str(workspace / "metadata"), "--root", str(workspace / "exp"),
            "--architecture", "tiny_cnn", "--batch_size", "16", "--workers", "0", "--device",
            "cpu", "--crop_size", "32", "--resize_size", "32", "--pretrained", "false",
            "--method", "cam", "--experiment_name", name, *extra]


@pytest.fixture(scope="module")
def vanilla(workspace: Path) -> Path:
    """A vanilla checkpoint (the starting weights, saved with --epochs 0)."""
    assert main.main(_flags(workspace, "vanilla", "--epochs", "0")) == 0
    return workspace / "exp" / "vanilla" / "last_checkpoint.pth.tar"


def _b2_flags(workspace: Path, name: str, ft_ckpt: Path, *extra: str) -> list[str]:
    return _flags(workspace, name, "--model_structure", "b2", "--unfreeze_layer", "branch2",
                  "--epochs", "1", "--ft_ckpt", str(ft_ckpt), *extra)


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The last stderr line, checked to be the only `error:` line and free of tracebacks."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


# --- item 4: a failed start does not block the corrected rerun --------------------------------

def test_failed_start_does_not_block_the_corrected_rerun(
        workspace: Path, vanilla: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    truncated = tmp_path / "truncated.pth.tar"
    truncated.write_bytes(vanilla.read_bytes()[:1000])
    folder = workspace / "exp" / "b2_rerun"
    assert main.main(_b2_flags(workspace, "b2_rerun", truncated)) == 1
    line = _error_line(capsys)
    assert str(truncated) in line and "not a readable checkpoint" in line
    assert sorted(os.listdir(folder)) == ["config.json", "train.log"]
    log = (folder / "train.log").read_text()
    assert f"run failed: CheckpointReadError: {truncated}" in log
    assert main.main(_b2_flags(workspace, "b2_rerun", workspace / "exp" / "vanilla" /
                                "last_checkpoint.pth.tar", "--resume", "auto")) == 1
    assert "run the command without --resume" in _error_line(capsys)

    assert main.main(_b2_flags(workspace, "b2_rerun", vanilla)) == 0  # no --override_cache
    assert load_training_checkpoint(folder / "last_checkpoint.pth.tar")["epoch"] == 1
    log = (folder / "train.log").read_text()
    assert log.index("run failed") < log.index("holds a run that completed no epoch")


def test_wrong_architecture_ft_ckpt_is_a_failed_start(workspace: Path, vanilla: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    flags = _b2_flags(workspace, "b2_arch", vanilla)
    flags[flags.index("tiny_cnn")] = "resnet50"
    assert main.main(flags) == 1
    assert "architecture mismatch" in _error_line(capsys)
    assert main.main(_b2_flags(workspace, "b2_arch", vanilla)) == 0


def test_a_completed_epoch_is_never_deleted(workspace: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Epoch 1 completed (report and metrics row, no checkpoint with --checkpoint_interval 5):
    the folder is an experiment, a rerun is refused and nothing is removed."""
    original = train.train_one_epoch

    def failing(*args: object, **kwargs: object) -> dict:
        if args[5] == 2:
            raise FloatingPointError("loss is nan at epoch 2, step 1 of 1")
        return original(*args, **kwargs)

    monkeypatch.setattr(train, "train_one_epoch", failing)
    flags = _flags(workspace, "one_epoch", "--epochs", "3", "--checkpoint_interval", "5")
    with pytest.raises(FloatingPointError):
        main.main(flags)
    folder = workspace / "exp" / "one_epoch"
    before = sorted(os.listdir(folder))
    assert "train_metrics.jsonl" in before and "reports_train" in before
    assert "run failed: FloatingPointError: loss is nan" in (folder / "train.log").read_text()
    monkeypatch.setattr(train, "train_one_epoch", original)
    assert main.main(flags) == 1
    assert "already exists" in _error_line(capsys)
    assert sorted(os.listdir(folder)) == before


# --- item 5: a file that is not a checkpoint --------------------------------------------------

def test_html_page_as_checkpoint_is_one_line_at_every_entry_point(
        workspace: Path, vanilla: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "vanilla.pth"
    page.write_bytes(HTML_PAGE)
    expected = f"error: {page} is not a readable checkpoint: it is an HTML page"
    assert main.main(_b2_flags(workspace, "b2_html", page)) == 1
    assert _error_line(capsys).startswith(expected)
    assert main.main(_flags(workspace, "no_such_experiment", "--eval_only", "--crop_size", "224",
                            "--ft_ckpt", str(page))) == 1
    assert _error_line(capsys).startswith(expected)
    assert heatmaps_main(["--images", str(workspace / "dataset" / "SYNTHETIC" / "test"),
                          "--output", str(tmp_path / "maps"), "--checkpoint", str(page),
                          "--method", "cam", "--device", "cpu"]) == 1
    assert _error_line(capsys).startswith(expected)
    model = build_model("tiny_cnn", "cam", 4, model_structure="b2")
    for load in (lambda: load_model_checkpoint(model, page),
                 lambda: load_finetune_checkpoint(model, page),
                 lambda: load_training_checkpoint(page),
                 lambda: load_torchvision_weights(build_model("resnet50", "cam", 4), page)):
        with pytest.raises(CheckpointReadError) as raised:
            load()
        message = str(raised.value)
        assert message.startswith(expected[len("error: "):])
        assert "weights_only" not in message and "\n" not in message


# --- item 6: corrupt image, any number of loader workers ----------------------------------------

def test_corrupt_training_image_gives_the_same_line_with_and_without_workers(
        workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "dataset"
    (data / "SYNTHETIC").mkdir(parents=True)
    metadata = load_metadata(str(workspace / "metadata"), "SYNTHETIC", "train", localization=False)
    for image_id in metadata.image_ids:
        target = data / "SYNTHETIC" / image_id
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((workspace / "dataset" / "SYNTHETIC" / image_id).read_bytes())
    corrupt = data / "SYNTHETIC" / metadata.image_ids[5]
    corrupt.write_bytes(HTML_PAGE)
    lines = {}
    for workers in ("0", "1", "2"):
        flags = _flags(workspace, f"corrupt_{workers}", "--epochs", "1", "--data_root",
                       str(data), "--workers", workers)
        assert main.main(flags) == 1
        lines[workers] = _error_line(capsys)
        log = (workspace / "exp" / f"corrupt_{workers}" / "train.log").read_text()
        assert f"run failed: UnreadableImageError: cannot read image {corrupt}" in log
    assert lines["0"] == lines["1"] == lines["2"]
    assert lines["0"].startswith(f"error: cannot read image {corrupt}: ")
    assert "--skip_unreadable" in lines["0"]
    assert main.main(flags + ["--skip_unreadable", "true"]) == 0  # the failed start is reused


def test_a_bug_in_a_loader_worker_keeps_its_traceback(workspace: Path) -> None:
    """Only bad input is unwrapped; any other worker error keeps the worker's traceback."""
    loader = get_data_loader("train", data_root=str(workspace / "dataset"),
                             metadata_root=str(workspace / "metadata"), dataset_name="SYNTHETIC",
                             batch_size=4, workers=1, resize_size=32, crop_size=32)

    def broken(image: object) -> torch.Tensor:
        raise TypeError("a bug in a transform")

    loader.dataset.transform = broken
    with pytest.raises(TypeError, match="(?s)Traceback.*a bug in a transform"):
        next(iter(loader))


# --- item 7: Ctrl-C, progress lines, labelled rates and losses ---------------------------------

def test_ctrl_c_prints_the_resume_command_which_resumes(
        workspace: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    original = train.train_one_epoch

    def interrupted(*args: object, **kwargs: object) -> dict:
        if args[5] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(train, "train_one_epoch", interrupted)
    flags = _flags(workspace, "ctrl_c", "--epochs", "3", "--override_cache", "true")
    assert main.main(flags) == main.INTERRUPTED == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    prefix = "interrupted; resume with: python main.py "
    assert err.splitlines()[-1].startswith(prefix)
    command = shlex.split(err.splitlines()[-1][len("interrupted; resume with: "):])
    assert command[-2:] == ["--resume", "auto"] and "--override_cache" not in command
    folder = workspace / "exp" / "ctrl_c"
    assert "run interrupted (Ctrl-C)" in (folder / "train.log").read_text()
    monkeypatch.setattr(train, "train_one_epoch", original)
    assert main.main(command[2:]) == 0
    assert load_training_checkpoint(folder / "last_checkpoint.pth.tar")["epoch"] == 3


def test_ctrl_c_in_a_real_process_exits_130_without_a_traceback(workspace: Path) -> None:
    folder = workspace / "exp" / "sigint"
    """Ctrl-C in a terminal sends SIGINT to the foreground process group: so does this test
    (a group of its own, SIGINT handled as by default even where the caller ignores it)."""
    process = subprocess.Popen(
        [sys.executable, "main.py", *_flags(workspace, "sigint", "--epochs", "100000")],
        cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (folder / train.LATEST_POINTER).is_file():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("interrupted; resume with: python main.py ")
    assert last.endswith("--resume auto")


def test_progress_lines_name_losses_and_rates(workspace: Path, vanilla: Path) -> None:
    """stderr is not a terminal under pytest: a line every --log_every steps."""
    assert main.main(_b2_flags(workspace, "b2_log", vanilla, "--batch_size", "4",
                               "--log_every", "2", "--lr", "0.003")) == 0
    log = (workspace / "exp" / "b2_log" / "train.log").read_text()
    steps = [line for line in log.splitlines() if " step " in line]
    assert [line.split(" step ")[1].split(":")[0] for line in steps] == ["2/4 (50%)",
                                                                         "4/4 (100%)"]
    assert "branch loss" in steps[0] and "(sigmoid BCE), frozen softmax head's CE" in steps[0]
    assert steps[0].endswith("images/s")
    epoch = next(line for line in log.splitlines() if "epoch 1: " in line)
    assert "branch loss" in epoch and "frozen softmax head's CE" in epoch
    assert "lr backbone 0.003, lr classifier 0.03" in epoch
    row = json.loads((workspace / "exp" / "b2_log" / "train_metrics.jsonl").read_text())
    assert row["loss"] == pytest.approx(row["loss_ce"] + row["loss_bce"])  # file unchanged


def test_vanilla_epoch_line_labels_the_softmax_loss(workspace: Path) -> None:
    assert main.main(_flags(workspace, "vanilla_log", "--epochs", "1", "--log_every", "0")) == 0
    log = (workspace / "exp" / "vanilla_log" / "train.log").read_text()
    assert " step " not in log
    epoch = next(line for line in log.splitlines() if "epoch 1: " in line)
    assert "(softmax CE)" in epoch and "lr backbone 0.01, lr classifier 0.1" in epoch


# --- item 8: help, the heatmap command, metadata ----------------------------------------------

def test_every_flag_has_help_and_help_shows_defaults() -> None:
    parser = build_parser()
    undocumented = [action.option_strings[0] for action in parser._actions
                    if action.option_strings and not action.help]
    assert undocumented == []
    text = " ".join(parser.format_help().split())
    assert "(default: 64)" in text and "(default: experiment/ILSVRC)" in text


def test_heatmaps_read_the_model_from_the_checkpoint(workspace: Path, vanilla: Path,
                                                     tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    images = workspace / "dataset" / "SYNTHETIC" / "test"
    assert heatmaps_main(["--images", str(images), "--output", str(tmp_path / "maps"),
                          "--checkpoint", str(vanilla), "--method", "gradcam",
                          "--large_feature_map", "FALSE", "--device", "cpu"]) == 0
    model = model_from_checkpoint(vanilla, family="grad").eval()
    assert (model.architecture, model.num_classes) == ("tiny_cnn", 4)
    first = sorted(images.rglob("*.jpg"))[0]
    batch = preprocess(first)[1][None]
    expected = compute_heatmaps(model, batch, model(batch)["logits"].argmax(1), "gradcam")[0]
    saved = np.load(tmp_path / "maps" / f"{first.relative_to(images)}.npy")
    np.testing.assert_allclose(saved, expected, rtol=0, atol=1e-5)
    assert main.main(_flags(workspace, "large", "--epochs", "0", "--large_feature_map",
                            "TRUE")) == 0
    large = workspace / "exp" / "large" / "last_checkpoint.pth.tar"
    for extra in ([], ["--large_feature_map", "TRUE"]):  # recorded, or given like main.py
        assert heatmaps_main(["--images", str(images), "--output", str(tmp_path / "large"),
                              "--checkpoint", str(large), "--method", "cam", "--device", "cpu",
                              *extra]) == 0
    assert heatmaps_main(["--images", str(images), "--output", str(tmp_path / "large"),
                          "--checkpoint", str(large), "--method", "cam", "--device", "cpu",
                          "--large_feature_map", "FALSE"]) == 1
    assert "differ in shape" in _error_line(capsys)
    bare = save_checkpoint(tmp_path / "bare.pth", {"state_dict": model.state_dict()})
    assert heatmaps_main(["--images", str(images), "--output", str(tmp_path / "bare"),
                          "--checkpoint", str(bare), "--method", "cam", "--device", "cpu"]) == 1
    assert _error_line(capsys) == (f"error: {bare} does not record the model's architecture "
                                   f"and num_classes; give --architecture and --num_classes")


def test_model_from_checkpoint_settings_win_over_records(vanilla: Path) -> None:
    assert model_from_checkpoint(vanilla).family == "cam"  # recorded
    assert model_from_checkpoint(vanilla, family="grad").family == "grad"
    with pytest.raises(CheckpointMismatchError, match="model_structure mismatch"):
        model_from_checkpoint(vanilla, model_structure="b2")
    with pytest.raises(CheckpointMismatchError, match="cannot build the model"):
        model_from_checkpoint(vanilla, architecture="no_such_backbone")


def test_overlays_have_one_home() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    heatmap = rng.random((8, 8))
    colours = cv2.applyColorMap((255 * heatmap).astype(np.uint8), cv2.COLORMAP_JET)
    expected = np.round(0.5 * rgb[..., ::-1] + 0.5 * colours.astype(float))
    blended = blend_heatmap(rgb_to_bgr(rgb), heatmap)
    assert np.abs(blended.astype(float) - expected).max() <= 1
    np.testing.assert_array_equal(overlay(Image.fromarray(rgb), heatmap), blended)


def test_missing_imagenet_train_metadata_names_the_script(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"python scripts/make_ilsvrc_train_metadata\.py "
                       r"--train_root dataset/ILSVRC/train --output .*ILSVRC/train"):
        get_config(["--dataset_name", "ILSVRC", "--architecture", "tiny_cnn", "--epochs", "1",
                    "--pretrained", "false", "--metadata_root", str(tmp_path)])
    with pytest.raises(MetadataError, match="make_ilsvrc_train_metadata.py"):
        load_metadata(str(tmp_path), "ILSVRC", "train", localization=False)


def test_synthetic_metadata_goes_under_the_data_root(tmp_path: Path) -> None:
    data = tmp_path / "dataset"
    synthetic_main(["--data_root", str(data), "--num_train", "2", "--num_val", "0",
                    "--num_test", "2", "--image_size", "64"])
    folder = data / "metadata" / "SYNTHETIC" / "test"
    assert load_metadata(str(data / "metadata"), "SYNTHETIC", "test").image_ids
    for name in ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt"):
        assert (folder / name).read_text().endswith("\n")
