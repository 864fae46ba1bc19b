"""The open backbone registry: a backbone registered from outside trains and evaluates in main.py.

The test declares a new two-stage network with its own :class:`BackboneSpec`, adds it to
``BACKBONES`` (the one registry line a new backbone file needs) and runs the command line on a
small synthetic set: vanilla training, sigmoid-branch training on the frozen backbone, evaluation.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

import main
from wsol.data.synthetic import generate_synthetic_dataset
from wsol.engine.optim import param_groups
from wsol.models import registry
from wsol.models.base import DualBranchModel, initialize_weights
from wsol.models.checkpoints import load_training_checkpoint
from wsol.models.spec import BackboneSpec, ParamGroupRule


class TwoStageNet(DualBranchModel):
    """conv–BN–ReLU, pool, conv–BN–ReLU → GAP → ``linear`` (and ``linear_sigmoid``)."""

    architecture = "two_stage"
    family = "cam"
    head_names = ("linear", "linear_sigmoid")
    cam_reduction = "mean"

    def __init__(self, num_classes: int, *, model_structure: str = "vanilla",
                 large_feature_map: bool = False) -> None:
        super().__init__(num_classes, model_structure, large_feature_map)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                                  nn.BatchNorm2d(16), nn.ReLU())
        self.linear = nn.Linear(16, num_classes)
        if self.has_branch2:
            self.linear_sigmoid = nn.Linear(16, num_classes)
        self.cam_layer = "body.6"
        initialize_weights(self, "he")

    def forward_features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward_heads(self, features: Tensor) -> dict[str, Tensor]:
        return self._apply_heads(features.mean(dim=(2, 3)))


class TwoStageNetGrad(TwoStageNet):
    family = "grad"
    cam_reduction = None


SPEC = BackboneSpec(name="two_stage", display_name="TwoStage",
                    models={"cam": TwoStageNet, "grad": TwoStageNetGrad},
                    signature_key="body.4.weight",
                    param_groups=ParamGroupRule(patterns=("body.",), matches_are_scaled=False))


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.BACKBONES, SPEC.name, SPEC)


def test_registered_backbone_is_built_and_grouped(registered: None) -> None:
    model = registry.build_model("two_stage", "grad", 3, model_structure="b2")
    assert isinstance(model, TwoStageNetGrad) and model.has_branch2
    names = {id(p): n for n, p in model.named_parameters()}
    groups = [{names[id(p)] for p in group["params"]} for group in param_groups(model, 1.0, 10.0)]
    assert all(name.startswith("body.") for name in groups[0])
    assert groups[1] == {"linear.weight", "linear.bias", "linear_sigmoid.weight",
                         "linear_sigmoid.bias"}
    assert "two_stage" in registry.architecture_help()


def test_registered_backbone_runs_main_end_to_end(registered: None, tmp_path: Path) -> None:
    generate_synthetic_dataset(str(tmp_path / "dataset"), str(tmp_path / "metadata"),
                               num_train=8, num_val=4, num_test=4, image_size=64)
    common = ["--dataset_name", "SYNTHETIC", "--data_root", str(tmp_path / "dataset"),
              "--metadata_root", str(tmp_path / "metadata"), "--root", str(tmp_path / "exp"),
              "--architecture", "two_stage", "--workers", "0", "--device", "cpu",
              "--batch_size", "8"]
    small = ["--crop_size", "32", "--resize_size", "32", "--epoch", "1", "--pretrained", "false"]
    assert main.main([*common, *small, "--experiment_name", "vanilla", "--lr", "0.01"]) == 0
    vanilla = tmp_path / "exp" / "vanilla" / "last_checkpoint.pth.tar"
    assert main.main([*common, *small, "--experiment_name", "b2", "--model_structure", "b2",
                      "--unfreeze_layer", "branch2", "--ft_ckpt", str(vanilla)]) == 0
    before = load_training_checkpoint(vanilla)["state_dict"]
    after = load_training_checkpoint(tmp_path / "exp" / "b2" / "last_checkpoint.pth.tar")
    for key, value in before.items():
        assert torch.equal(after["state_dict"][key], value), key
    assert not torch.equal(after["state_dict"]["linear_sigmoid.weight"],
                           before["linear.weight"])
    for method in ("cam", "gradcam"):
        assert main.main([*common, "--experiment_name", "b2", "--model_structure", "b2",
                          "--method", method, "--eval_only", "--num_overlays", "0"]) == 0
        results = json.loads((tmp_path / "exp" / "b2" / f"results_{method}.json").read_text())
        assert results["metrics"]["maxboxacc_v2"] is not None
