"""Reliability: bad input fails with a clear error, an interrupted run loses nothing.

Cases covered by other test files (metadata lines, flag rules, checkpoint mismatches, NaN loss,
overwrite policy) are listed with their tests in docs/reliability.md; this file holds the rest.
Subprocesses run single-threaded, each under a timeout, so no case can wait forever.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import main
from cam import CAMMethod, CAMResult, get_method, postprocess_maps, postprocess_maps_checked
from data_loaders import UnreadableImageError, WSOLDataset, build_transform
from wsol import evaluation
from wsol.data.metadata import (
    MetadataError,
    load_metadata,
    read_boxes,
    read_class_labels,
    read_image_ids,
    read_image_sizes,
    read_mask_paths,
)
from wsol.data.synthetic import generate_synthetic_dataset
from wsol.metrics.evaluation import MaskEvaluator, ScoreMapError, build_evaluator
from wsol.models.checkpoints import (
    CheckpointReadError,
    load_model_checkpoint,
    load_training_checkpoint,
)
from wsol.models.registry import build_model

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120
EPOCHS = 3
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}



@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reliability")
    generate_synthetic_dataset(str(root / "dataset"), str(root / "metadata"), num_train=16,
                               num_val=4, num_test=4, image_size=64)
    return root


def _flags(workspace: Path, name: str, *extra: str) -> list[str]:
    return ["--dataset_name", "SYNTHETIC", "--data_root", str(workspace / "dataset"),
            "--metadata_root", str(workspace / "metadata"), "--root", str(workspace / "exp"),
            "--architecture", "tiny_cnn", "--batch_size", "8", "--workers", "0", "--device",
            "cpu", "--experiment_name", name, *extra]


def _train_flags(workspace: Path, name: str) -> list[str]:
    return _flags(workspace, name, "--crop_size", "32", "--resize_size", "32", "--pretrained",
                  "false", "--method", "cam", "--epoch", str(EPOCHS), "--lr", "0.0003")


def _mask_evaluator(workspace: Path, split: str = "test") -> MaskEvaluator:
    metadata = load_metadata(str(workspace / "metadata"), "SYNTHETIC_MASK", split)
    return MaskEvaluator(metadata, str(workspace / "dataset" / "SYNTHETIC"), 0.01)


# --- wrong or missing paths ----------------------------------------------------------------------

def test_missing_paths_fail_fast(workspace: Path, capsys: pytest.CaptureFixture) -> None:
    """No retry loop (SPEC D3): each call returns at once with the path and the flag."""
    calls = {
        "checkpoint": _flags(workspace, "absent", "--eval_only"),
        "metadata": _flags(workspace, "absent", "--eval_only", "--metadata_root",
                           str(workspace / "no_metadata")),
        "ft_ckpt": _flags(workspace, "absent", "--epoch", "1", "--pretrained", "false",
                          "--model_structure", "b2", "--unfreeze_layer", "branch2",
                          "--ft_ckpt", str(workspace / "none.pth.tar")),
    }
    started = time.monotonic()
    codes = {name: main.main(argv) for name, argv in calls.items()}
    assert time.monotonic() - started < TIMEOUT
    assert codes == {"checkpoint": 1, "metadata": 2, "ft_ckpt": 2}
    err = capsys.readouterr().err
    assert f"{workspace / 'exp' / 'absent' / 'last_checkpoint.pth.tar'} not found" in err
    assert "--experiment_name" in err
    assert f"{workspace / 'no_metadata' / 'SYNTHETIC' / 'test'} not found" in err
    assert f"--ft_ckpt: file not found: {workspace / 'none.pth.tar'}" in err
    assert not (workspace / "exp" / "absent").exists()


def test_missing_data_root_names_path_and_flag(workspace: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    missing = workspace / "no_images"
    flags = _train_flags(workspace, "no_images") + ["--data_root", str(missing)]
    assert main.main(flags) == 1
    assert f"image folder not found: {missing / 'SYNTHETIC'} (check --data_root" in \
        capsys.readouterr().err
    assert not (workspace / "exp" / "no_images").exists()


def test_missing_mask_root_and_mask_file_name_path_and_flag(workspace: Path,
                                                            tmp_path: Path) -> None:
    metadata = load_metadata(str(workspace / "metadata"), "SYNTHETIC_MASK", "test")
    with pytest.raises(FileNotFoundError, match=f"mask root not found: {tmp_path / 'x'} "
                                                r"\(check --mask_root\)"):
        build_evaluator(metadata, mask_root=str(tmp_path / "x"))
    evaluator = MaskEvaluator(metadata, str(tmp_path), 0.01)
    mask_path, _ = metadata.mask_paths[metadata.image_ids[0]]
    with pytest.raises(FileNotFoundError, match=f"mask file not found: {tmp_path / mask_path[0]}"
                                                r" \(check --mask_root\)"):
        evaluator.accumulate(np.zeros((224, 224), np.float32), metadata.image_ids[0])
    assert evaluator.num_images == 0


# --- malformed metadata ------------------------------------------------------------------------

def test_metadata_that_is_not_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "image_ids.txt"
    path.write_bytes(b"a.jpg\nb.jpg\nc\xff.jpg\n")
    with pytest.raises(MetadataError, match=f"{path}, line 3: not UTF-8 text"):
        read_image_ids(str(path))


_READERS = {
    "image_ids.txt": read_image_ids,
    "class_labels.txt": lambda p: read_class_labels(p, 4),
    "image_sizes.txt": read_image_sizes,
    "localization.txt": lambda p: read_boxes(p, {"a": (10, 10), "b": (5, 7)}),
    "masks.txt": read_mask_paths,
}
_TOKENS = ["a", "b", "a.jpg", ",", ",,", "0", "1", "3", "-1", "9999", "x", " ", "\r", "\t", "é",
           "1.5", "1e3", ""]


def _random_metadata(rng: np.random.Generator) -> bytes:
    if rng.random() < 0.3:
        return rng.bytes(int(rng.integers(0, 200)))
    lines = [",".join(str(rng.choice(_TOKENS)) for _ in range(int(rng.integers(0, 7))))
             for _ in range(int(rng.integers(0, 6)))]
    return "\n".join(lines).encode("utf-8")


@pytest.mark.parametrize("seed", range(8))
def test_fuzz_metadata_readers_raise_only_metadata_errors(seed: int, tmp_path: Path) -> None:
    """Random bytes and random comma-separated lines: parsed, or a MetadataError with the file."""
    rng = np.random.default_rng(seed)
    for _ in range(60):
        for name, reader in _READERS.items():
            path = tmp_path / name
            path.write_bytes(_random_metadata(rng))
            try:
                reader(str(path))
            except MetadataError as error:
                assert str(error).startswith(str(path))


@pytest.mark.parametrize("seed", range(4))
def test_fuzz_corrupted_split_raises_only_metadata_errors(seed: int, workspace: Path,
                                                          tmp_path: Path) -> None:
    """One line of a real split replaced by random text: loads, or a MetadataError."""
    rng = np.random.default_rng(100 + seed)
    for _ in range(10):
        folder = tmp_path / "SYNTHETIC" / "test"
        folder.mkdir(parents=True, exist_ok=True)
        source = workspace / "metadata" / "SYNTHETIC" / "test"
        for file in source.iterdir():
            (folder / file.name).write_bytes(file.read_bytes())
        victim = folder / str(rng.choice(sorted(p.name for p in source.iterdir())))
        lines = victim.read_bytes().split(b"\n")
        lines[int(rng.integers(0, len(lines)))] = _random_metadata(rng).replace(b"\n", b"")
        victim.write_bytes(b"\n".join(lines))
        try:
            load_metadata(str(tmp_path), "SYNTHETIC", "test")
        except MetadataError as error:
            assert str(folder) in str(error)


# --- unreadable images and masks ---------------------------------------------------------------

def test_empty_image_file_names_the_file(workspace: Path, tmp_path: Path) -> None:
    metadata = load_metadata(str(workspace / "metadata"), "SYNTHETIC", "test")
    image_id = metadata.image_ids[0]
    path = tmp_path / "SYNTHETIC" / image_id
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    dataset = WSOLDataset(str(tmp_path), metadata, build_transform("test"))
    with pytest.raises(UnreadableImageError, match=f"cannot read image {path}"):
        dataset[0]


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n garbage"])
def test_unreadable_mask_names_the_file(workspace: Path, tmp_path: Path, content: bytes) -> None:
    metadata = load_metadata(str(workspace / "metadata"), "SYNTHETIC_MASK", "test")
    image_id = metadata.image_ids[0]
    (mask_path,), ignore_path = metadata.mask_paths[image_id]
    for name in (mask_path, ignore_path):
        source = workspace / "dataset" / "SYNTHETIC" / name
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(source.read_bytes())
    (tmp_path / mask_path).write_bytes(content)
    evaluator = MaskEvaluator(metadata, str(tmp_path), 0.01)
    with pytest.raises(ValueError, match=f"mask file could not be decoded as an image: "
                                         f"{tmp_path / mask_path}"):
        evaluator.accumulate(np.zeros((224, 224), np.float32), image_id)
    assert evaluator.num_images == 0


def test_mask_of_another_size_is_resized_not_rejected(workspace: Path, tmp_path: Path) -> None:
    """SPEC §2.5 resizes every mask to 224x224, so only an undecodable mask is an error."""
    metadata = load_metadata(str(workspace / "metadata"), "SYNTHETIC_MASK", "test")
    image_id = metadata.image_ids[0]
    (mask_path,), ignore_path = metadata.mask_paths[image_id]
    foreground = np.zeros((7, 13), np.uint8)
    foreground[:, 7:] = 255
    for name, array in ((mask_path, foreground), (ignore_path, np.zeros((3, 3), np.uint8))):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(tmp_path / name)
    gt = MaskEvaluator(metadata, str(tmp_path), 0.01).gt_mask(image_id)
    assert gt.shape == (224, 224)
    assert not gt[:, :120].any() and gt[:, 121:].all()


# --- checkpoints -------------------------------------------------------------------------------

@pytest.mark.parametrize("cut", [0, 10, 0.5])
def test_truncated_checkpoint_names_the_file(tmp_path: Path, cut: float) -> None:
    model = build_model("tiny_cnn", "cam", 4)
    buffer = io.BytesIO()
    torch.save({"state_dict": model.state_dict()}, buffer)
    data = buffer.getvalue()
    path = tmp_path / "last_checkpoint.pth.tar"
    path.write_bytes(data[:int(cut * len(data)) if isinstance(cut, float) else cut])
    with pytest.raises(CheckpointReadError, match=f"{path} is not a readable checkpoint"):
        load_model_checkpoint(model, path)


def test_unsafe_checkpoint_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "random.pth"
    path.write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.raises(CheckpointReadError, match=str(path)) as raised:
        load_training_checkpoint(path)
    assert "weights_only" not in str(raised.value) and "\n" not in str(raised.value)


_KILLED_SAVE = """
import os, signal, sys, torch
from wsol.models import checkpoints
path = sys.argv[1]
checkpoints.save_checkpoint(path, {"epoch": 1, "w": torch.ones(4)})
real_save = torch.save
def dying_save(obj, handle):
    real_save(obj, handle)
    handle.flush()
    handle.truncate(handle.tell() // 2)
    os.kill(os.getpid(), signal.SIGKILL)
checkpoints.torch.save = dying_save
checkpoints.save_checkpoint(path, {"epoch": 2, "w": torch.zeros(100_000)})
"""


def test_kill_during_checkpoint_write_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "last_checkpoint.pth.tar"
    result = subprocess.run([sys.executable, "-c", _KILLED_SAVE, str(path)], cwd=ROOT, env=ENV,
                            capture_output=True, timeout=TIMEOUT, check=False)
    assert result.returncode == -signal.SIGKILL
    previous = load_training_checkpoint(path)
    assert previous["epoch"] == 1 and torch.equal(previous["w"], torch.ones(4))
    partial = path.with_name(path.name + ".tmp")
    assert partial.is_file()  # left by the kill, never under a checkpoint name
    with pytest.raises(CheckpointReadError, match="truncated"):
        load_training_checkpoint(partial)


def test_kill_mid_epoch_resumes_to_the_uninterrupted_result(workspace: Path) -> None:
    """SIGKILL during epoch 2, --resume auto, same final checkpoint as an uninterrupted run."""
    folder = workspace / "exp" / "killed"
    rows = folder / "train_metrics.jsonl"
    pointer_file = folder / "latest_checkpoint.json"
    process = subprocess.Popen(
        [sys.executable, "main.py", *_train_flags(workspace, "killed")], cwd=ROOT, env=ENV,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not pointer_file.is_file():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=TIMEOUT) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
    assert not (folder / "last_checkpoint.pth.tar").exists()  # really interrupted
    pointer = json.loads(pointer_file.read_text())
    assert 1 <= pointer["epoch"] < EPOCHS
    assert main.main(_train_flags(workspace, "killed")) == 1  # never overwritten silently
    assert main.main(_train_flags(workspace, "killed") + ["--resume", "auto"]) == 0
    assert main.main(_train_flags(workspace, "uninterrupted")) == 0
    reference = load_training_checkpoint(workspace / "exp" / "uninterrupted" /
                                         "last_checkpoint.pth.tar")
    final = load_training_checkpoint(folder / "last_checkpoint.pth.tar")
    assert final["epoch"] == reference["epoch"] == EPOCHS
    for key, value in reference["state_dict"].items():
        assert torch.equal(value, final["state_dict"][key]), key
    for index, buffers in reference["optimizer"]["state"].items():
        assert torch.equal(buffers["momentum_buffer"],
                           final["optimizer"]["state"][index]["momentum_buffer"])
    epochs = [json.loads(line)["epoch"] for line in rows.read_text().splitlines()]
    assert epochs[-(EPOCHS - pointer["epoch"]):] == list(range(pointer["epoch"] + 1, EPOCHS + 1))
    assert epochs == sorted(set(epochs))


# --- non-finite heatmaps -----------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["opencv", "torch"])
@pytest.mark.parametrize("method", ["cam", "gradcam"])
def test_non_finite_heatmaps_become_zero_and_are_flagged(method: str, backend: str,
                                                         workspace: Path) -> None:
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(5, 7, 7)).astype(np.float32)
    raw[1, 2, 3] = np.nan
    raw[2, 0, 0] = np.inf
    raw[3, :, :] = np.inf
    raw[4, 4, 4] = -np.inf
    result = postprocess_maps_checked(torch.from_numpy(raw), method, backend)
    scoremaps = np.asarray(result.scoremaps)
    # the gradient chain clamps -inf to 0 (ReLU, SPEC §6.2) before anything else
    expected = [False, True, True, True, method == "cam"]
    assert result.nonfinite.tolist() == expected
    assert np.isfinite(scoremaps).all()
    assert not scoremaps[np.asarray(expected)].any()
    plain = np.asarray(postprocess_maps(torch.from_numpy(raw), method, backend))
    np.testing.assert_array_equal(plain, scoremaps)
    evaluator = build_evaluator(load_metadata(str(workspace / "metadata"), "SYNTHETIC", "test"),
                                cam_curve_interval=0.01)
    ids = load_metadata(str(workspace / "metadata"), "SYNTHETIC", "test").image_ids
    evaluator.accumulate_batch(scoremaps[:4], ids)
    assert evaluator.compute()["num_images"] == 4


# --- fuzzing of the evaluator's inputs ---------------------------------------------------------

_FUZZ_SHAPES = [(224, 224), (224, 224), (224, 224), (224,), (1, 224, 224), (224, 223), (0, 0)]
_FUZZ_RANGES = [(0, 1), (0, 1), (-1, 1), (0, 2), (1, 1), (0, 1e-6)]


@pytest.mark.parametrize("seed", range(16))
def test_fuzz_mask_evaluator_only_intended_errors(seed: int, workspace: Path) -> None:
    """Random shapes, dtypes and ranges: a valid PxAP or a ScoreMapError, counters untouched.

    Even seeds draw valid maps (float32/float64, 224x224, values in [0, 1]), which must be
    accepted; odd seeds draw anything.
    """
    evaluator = _mask_evaluator(workspace)
    rng = np.random.default_rng(seed)
    valid = seed % 2 == 0
    dtypes = [np.float32, np.float64] if valid else [np.float16, np.float32, np.uint8, np.bool_]
    dtype = rng.choice(dtypes)
    shape = _FUZZ_SHAPES[0 if valid else int(rng.integers(0, len(_FUZZ_SHAPES)))]
    ranges = [r for r in _FUZZ_RANGES if 0 <= r[0] <= r[1] <= 1] if valid else _FUZZ_RANGES
    low, high = ranges[int(rng.integers(0, len(ranges)))]
    values = rng.uniform(low, high, size=shape)
    if not valid and rng.random() < 0.5 and values.size:
        values.flat[int(rng.integers(0, values.size))] = rng.choice([np.nan, np.inf, -np.inf])
    with np.errstate(invalid="ignore"):
        scoremap = values.astype(dtype)
    image_id = evaluator.metadata.image_ids[seed % 4]
    try:
        evaluator.accumulate(scoremap, image_id)
    except ScoreMapError:
        assert not valid
        assert evaluator.num_images == 0
        assert not evaluator.gt_true_score_hist.any()
        return
    assert 0.0 <= evaluator.compute()["PxAP"] <= 100.0


def _random_npy(rng: np.random.Generator) -> bytes:
    buffer = io.BytesIO()
    kind = int(rng.integers(0, 5))
    if kind == 0:
        return rng.bytes(int(rng.integers(0, 300)))
    if kind == 1:
        np.save(buffer, rng.uniform(0, 1, (224, 224)).astype(np.float32))
        data = buffer.getvalue()
        return data[:int(rng.integers(0, len(data)))]
    if kind == 2:
        np.save(buffer, rng.uniform(0, 1, (224, 224)).astype(np.float32))
        data = bytearray(buffer.getvalue())
        for _ in range(int(rng.integers(1, 8))):
            data[int(rng.integers(0, 128))] = int(rng.integers(0, 256))
        return bytes(data)
    if kind == 3:
        np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        return buffer.getvalue()
    np.save(buffer, rng.uniform(-0.5, 1.5, (224, 224)).astype(np.float32))
    return buffer.getvalue()


def _valid_map(rng: np.random.Generator) -> np.ndarray:
    window = np.outer(np.hanning(224), np.hanning(224)) ** rng.uniform(0.2, 3)
    return [window, np.zeros_like(window), np.ones_like(window)][int(rng.integers(0, 3))].astype(
        rng.choice([np.float32, np.float64]))


@pytest.mark.parametrize("seed", range(9))
def test_fuzz_command_line_exits_with_a_message(seed: int, workspace: Path,
                                                tmp_path: Path) -> None:
    """`python -m wsol.evaluation` on random map files, ids and pred_correct files.

    Seeds divisible by 3 give valid random inputs, which must evaluate; the others corrupt some
    inputs. Every outcome is a results file or a `SystemExit` whose message starts with `error:`
    and names a file; nothing else escapes, and no results file is left after an error.
    """
    rng = np.random.default_rng(seed)
    corrupt = 0.0 if seed % 3 == 0 else 0.5
    metadata = load_metadata(str(workspace / "metadata"), "SYNTHETIC", "test")
    ids = list(rng.permutation(metadata.image_ids)[:int(rng.integers(1, 5))])
    maps = tmp_path / "maps"
    for image_id in metadata.image_ids:
        (maps / image_id).parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, _valid_map(rng))
        bad = rng.random() < corrupt
        (maps / f"{image_id}.npy").write_bytes(_random_npy(rng) if bad else buffer.getvalue())
    argv = ["--scoremap_root", str(maps), "--metadata_root", str(workspace / "metadata"),
            "--dataset_name", "SYNTHETIC", "--split", "test", "--cam_curve_interval", "0.01",
            "--image_ids", str(tmp_path / "ids.txt")]
    (tmp_path / "ids.txt").write_bytes(_random_metadata(rng) if rng.random() < corrupt
                                       else "\n".join(ids).encode("utf-8"))
    if rng.random() < 0.5:
        lines = [f"{i},{int(rng.integers(0, 2))}" for i in ids]
        if rng.random() < corrupt:
            lines[int(rng.integers(0, len(lines)))] = _random_metadata(rng).decode("latin-1")
        pred = "\n".join(lines).encode("utf-8")
        (tmp_path / "pred.csv").write_bytes(rng.bytes(40) if rng.random() < corrupt / 2 else pred)
        argv += ["--pred_correct", str(tmp_path / "pred.csv")]
    output = tmp_path / "out.json"
    try:
        evaluation.main([*argv, "--output", str(output)])
    except SystemExit as error:
        assert corrupt, error.code
        assert str(error.code).startswith("error: "), error.code
        assert str(tmp_path) in str(error.code)
        assert not output.exists()
        return
    assert json.loads(output.read_text())["num_images"] == len(ids)


def test_evaluation_counts_non_finite_heatmaps(workspace: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A NaN heatmap is evaluated as an all-zero map and counted in the results."""
    assert main.main(_flags(workspace, "nan_maps", "--epoch", "0", "--pretrained", "false",
                            "--method", "cam")) == 0
    method = get_method("cam")
    explain = method.explain

    def poisoned(self: CAMMethod, images: torch.Tensor, labels: torch.Tensor) -> CAMResult:
        result = explain(self, images, labels)
        result.maps[0, 0, 0] = float("nan")
        return result

    monkeypatch.setattr(method, "explain", poisoned)
    assert main.main(_flags(workspace, "nan_maps", "--eval_only", "--method", "cam",
                            "--num_overlays", "0")) == 0
    results = json.loads((workspace / "exp" / "nan_maps" / "results_cam.json").read_text())
    assert results["metrics"]["num_nonfinite_heatmaps"] == 1  # one batch of 4 test images


def test_unreadable_test_image_stops_or_is_skipped_and_counted(
        workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Without --skip_unreadable a corrupt image stops evaluation naming the file; with it the
    image is left out and counted, and the metrics cover the other images."""
    shutil.copytree(workspace / "dataset", tmp_path / "dataset")
    metadata = load_metadata(str(workspace / "metadata"), "SYNTHETIC", "test")
    corrupt = tmp_path / "dataset" / "SYNTHETIC" / metadata.image_ids[1]
    corrupt.write_bytes(b"not an image")
    flags = _flags(workspace, "corrupt", "--data_root", str(tmp_path / "dataset"), "--method",
                   "cam", "--num_overlays", "0", "--override_cache", "true")
    assert main.main(_flags(workspace, "corrupt", "--epoch", "0", "--pretrained", "false",
                            "--method", "cam")) == 0
    assert main.main(flags + ["--eval_only"]) == 1
    assert str(corrupt) in capsys.readouterr().err
    assert main.main(flags + ["--eval_only", "--skip_unreadable", "true"]) == 0
    results = json.loads((workspace / "exp" / "corrupt" / "results_cam.json").read_text())
    assert results["metrics"]["num_skipped_images"] == 1
    assert results["metrics"]["num_images"] == len(metadata.image_ids) - 1
