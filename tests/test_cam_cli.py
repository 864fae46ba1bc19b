"""`python -m cam.heatmaps` on a small folder of images with a saved `tiny_cnn` checkpoint."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from cam import compute_heatmaps
from cam.heatmaps import main, preprocess
from tests.cam_models import freeze
from wsol.models.checkpoints import save_checkpoint
from wsol.models.registry import build_model

NUM_CLASSES = 5



@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, torch.nn.Module]:
    root = tmp_path_factory.mktemp("cli")
    images = root / "images"
    (images / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(images / "a.jpg")
    Image.fromarray(rng.integers(0, 256, (50, 40), dtype=np.uint8)).save(images / "sub" / "b.png")
    (images / "notes.txt").write_text("not an image")
    torch.manual_seed(0)
    model = build_model("tiny_cnn", "cam", NUM_CLASSES, model_structure="b2")
    checkpoint = save_checkpoint(root / "last_checkpoint.pth.tar", {"model": model.state_dict()})
    return images, checkpoint, freeze(model)


def _argv(images: Path, checkpoint: Path, out: Path, method: str, *extra: str) -> list[str]:
    return ["--images", str(images), "--output", str(out), "--checkpoint", str(checkpoint),
            "--method", method, "--device", "cpu", *extra]


def _run(setup: tuple, out: Path, method: str, *extra: str) -> None:
    images, checkpoint, _ = setup
    model_flags = ["--architecture", "tiny_cnn", "--model_structure", "b2", "--num_classes",
                   str(NUM_CLASSES)]
    assert main(_argv(images, checkpoint, out, method, *model_flags, *extra)) == 0


def _inputs(images: Path) -> torch.Tensor:
    return torch.stack([preprocess(images / name)[1] for name in ("a.jpg", "sub/b.png")])


def test_cli_writes_heatmaps_overlays_and_classes(setup: tuple, tmp_path: Path) -> None:
    """Without --class_index the softmax head's prediction is explained; the .npy files equal
    `compute_heatmaps` on the same preprocessed batch."""
    images, _, model = setup
    _run(setup, tmp_path, "cam", "--batch_size", "1")
    batch = _inputs(images)
    predicted = model(batch)["logits"].argmax(1)
    expected = compute_heatmaps(model, batch, predicted, "cam")
    for index, name in enumerate(("a.jpg", "sub/b.png")):
        heatmap = np.load(tmp_path / f"{name}.npy")
        assert heatmap.shape == (224, 224)
        assert heatmap.dtype == np.float32
        np.testing.assert_allclose(heatmap, expected[index], rtol=0, atol=1e-6)
        assert cv2.imread(str(tmp_path / f"{name}.png")).shape == (224, 224, 3)
    rows = (tmp_path / "classes.csv").read_text().split()
    assert rows == ["image,class", f"a.jpg,{int(predicted[0])}", f"sub/b.png,{int(predicted[1])}"]
    assert not (tmp_path / "notes.txt.npy").exists()


def test_cli_class_index_and_gradient_method(setup: tuple, tmp_path: Path) -> None:
    """A `tiny_cnn` checkpoint (like ResNet50) serves both families; --class_index fixes the
    explained class."""
    images, _, model = setup
    _run(setup, tmp_path, "gradcam", "--class_index", "3", "--postprocess", "torch")
    expected = compute_heatmaps(model, _inputs(images), 3, "gradcam")
    np.testing.assert_allclose(np.load(tmp_path / "a.jpg.npy"), expected[0], rtol=0, atol=1e-5)
    assert (tmp_path / "classes.csv").read_text().split()[1:] == ["a.jpg,3", "sub/b.png,3"]


def test_cli_rejects_bad_arguments(setup: tuple, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """argparse rejects unknown choices; bad input ends in one line `error: ...` (after the
    progress log, never a traceback) and status 1."""
    images, checkpoint, _ = setup
    with pytest.raises(SystemExit):
        _run(setup, tmp_path, "scorecam")
    capsys.readouterr()
    flags = ["--architecture", "tiny_cnn", "--model_structure", "b2", "--num_classes",
             str(NUM_CLASSES)]
    assert main(_argv(images, checkpoint, tmp_path, "cam", *flags, "--class_index",
                      str(NUM_CLASSES))) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"error: --class_index must lie in [0, {NUM_CLASSES})"
    assert "Traceback" not in err
    missing = tmp_path / "missing"
    assert main(_argv(missing, checkpoint, tmp_path, "cam", *flags)) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"error: image folder not found: {missing}"
    assert "Traceback" not in err
