"""Two processes on the CPU (gloo, `torchrun`) give the single-process results.

Training: full-batch steps (2 processes x 4 images vs 1 process x 8 images) of the sigmoid branch
on a frozen backbone with frozen-eval BatchNorm see the same images with the same augmentation
(seeded per image), so DDP's averaged gradient equals the single-process gradient and the weights
agree up to float rounding. Evaluation: the sharded pass sums the same counters, so every metric
and curve is equal, and score maps, `pred_correct.csv` and overlays are the same files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import main
from data_loaders import ShardSampler
from wsol.data.synthetic import generate_synthetic_dataset
from wsol.models.checkpoints import load_training_checkpoint

REPO = Path(__file__).resolve().parent.parent
NUM_TRAIN, NUM_TEST = 8, 6
TIMEOUT_S = 240
BRANCH = ["--model_structure", "b2", "--unfreeze_layer", "branch2", "--bn_mode", "frozen_eval",
          "--method", "cam", "--epochs", "2", "--lr", "0.05", "--crop_size", "32",
          "--resize_size", "40"]
EVAL = ["--eval_only", "--method", "cam", "--model_structure", "b2", "--max_images", "5",
        "--num_overlays", "3", "--save_scoremaps", "--batch_size", "2"]



@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("distributed")
    generate_synthetic_dataset(str(root / "dataset"), str(root / "metadata"),
                               num_train=NUM_TRAIN, num_val=0, num_test=NUM_TEST, image_size=64)
    return root


def _flags(workspace: Path, name: str) -> list[str]:
    return ["--dataset_name", "SYNTHETIC", "--data_root", str(workspace / "dataset"),
            "--metadata_root", str(workspace / "metadata"), "--mask_root",
            str(workspace / "dataset"), "--root", str(workspace / "exp"), "--architecture",
            "tiny_cnn", "--workers", "0", "--device", "cpu", "--experiment_name", name]


def _torchrun(argv: list[str]) -> None:
    """`torchrun --standalone --nproc_per_node 2 main.py argv` with a time limit."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "main.py", *argv]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr[-4000:]


@pytest.fixture(scope="module")
def vanilla(workspace: Path) -> Path:
    """The untrained backbone as a checkpoint (`--epochs 0`)."""
    assert main.main(_flags(workspace, "vanilla") + ["--epochs", "0", "--pretrained", "false",
                                                     "--method", "cam"]) == 0
    return workspace / "exp" / "vanilla" / "last_checkpoint.pth.tar"


@pytest.fixture(scope="module")
def trained(workspace: Path, vanilla: Path) -> dict[str, Path]:
    branch = BRANCH + ["--ft_ckpt", str(vanilla)]
    assert main.main(_flags(workspace, "single") + branch + ["--batch_size", "8"]) == 0
    _torchrun(_flags(workspace, "ddp") + branch + ["--batch_size", "4"])
    return {"single": workspace / "exp" / "single", "ddp": workspace / "exp" / "ddp"}


@pytest.fixture(scope="module")
def evaluated(workspace: Path, trained: dict[str, Path]) -> dict[str, Path]:
    checkpoint = ["--ft_ckpt", str(trained["single"] / "last_checkpoint.pth.tar")]
    assert main.main(_flags(workspace, "eval_single") + EVAL + checkpoint) == 0
    _torchrun(_flags(workspace, "eval_ddp") + EVAL + checkpoint)
    return {"single": workspace / "exp" / "eval_single", "ddp": workspace / "exp" / "eval_ddp"}


def test_shards_cover_every_index_once_without_padding() -> None:
    shards = [list(ShardSampler(7, rank, 3)) for rank in range(3)]
    assert shards == [[0, 3, 6], [1, 4], [2, 5]]
    assert list(ShardSampler(2, 2, 4)) == []
    with pytest.raises(ValueError, match="rank 3"):
        ShardSampler(5, 3, 3)


def _rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "train_metrics.jsonl").read_text().splitlines()]


def test_ddp_training_matches_one_process_with_the_same_global_batch(
        trained: dict[str, Path]) -> None:
    single = load_training_checkpoint(trained["single"] / "last_checkpoint.pth.tar")
    ddp = load_training_checkpoint(trained["ddp"] / "last_checkpoint.pth.tar")
    assert set(single["state_dict"]) == set(ddp["state_dict"])
    for key, value in single["state_dict"].items():
        assert torch.allclose(value.float(), ddp["state_dict"][key].float(), atol=1e-6,
                              rtol=1e-5), key
    assert not any(key.startswith("module.") for key in ddp["state_dict"])
    assert len(ddp["rng_by_rank"]) == 2 and "rng_by_rank" not in single
    for one, two in zip(_rows(trained["single"]), _rows(trained["ddp"]), strict=True):
        assert two["num_images"] == one["num_images"] == NUM_TRAIN
        assert two["accuracy"] == one["accuracy"] and two["accuracy2"] == one["accuracy2"]
        assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
        assert two["loss_bce"] == pytest.approx(one["loss_bce"], rel=1e-5)


def test_only_the_branch_trains_under_ddp(trained: dict[str, Path], vanilla: Path) -> None:
    before = load_training_checkpoint(vanilla)["state_dict"]
    after = load_training_checkpoint(trained["ddp"] / "last_checkpoint.pth.tar")["state_dict"]
    assert set(after) - set(before) == {"fc2.weight", "fc2.bias"}
    assert all(torch.equal(value, after[key]) for key, value in before.items())
    first, second = _rows(trained["ddp"])
    assert second["loss_bce"] != first["loss_bce"]


def test_sharded_evaluation_equals_one_process(evaluated: dict[str, Path]) -> None:
    single = json.loads((evaluated["single"] / "results_cam.json").read_text())
    ddp = json.loads((evaluated["ddp"] / "results_cam.json").read_text())
    assert ddp["metrics"]["num_images"] == 5
    assert ddp["metrics"] == single["metrics"]
    assert ddp["curves"] == single["curves"]
    assert ddp["report"] == single["report"]
    assert ddp["timing"]["processes"] == 2


def test_sharded_evaluation_writes_the_same_files(evaluated: dict[str, Path]) -> None:
    maps = {name: sorted(p.relative_to(folder / "scoremaps_cam")
                         for p in (folder / "scoremaps_cam").rglob("*.npy"))
            for name, folder in evaluated.items()}
    assert len(maps["single"]) == 5 and maps["ddp"] == maps["single"]
    for relative in maps["single"]:
        assert np.array_equal(np.load(evaluated["single"] / "scoremaps_cam" / relative),
                              np.load(evaluated["ddp"] / "scoremaps_cam" / relative))
    csv = [(folder / "scoremaps_cam" / "pred_correct.csv").read_text()
           for folder in evaluated.values()]
    assert csv[0] == csv[1] and len(csv[0].splitlines()) == 5
    overlays = [sorted(p.relative_to(folder) for p in (folder / "overlays_cam").rglob("*.png"))
                for folder in evaluated.values()]
    assert len(overlays[0]) == 3 and overlays[0] == overlays[1]
