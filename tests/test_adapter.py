"""Torchvision classifiers with the sigmoid branch (`wsol.models.adapter`), family by family.

Each supported torchvision class is built in its smallest configuration with random BatchNorm
statistics. For every family: head 1 reproduces the classifier's logits bit for bit; one
branch-training step changes the branch and nothing else; each gradient method's map of the
vanilla model equals the `grad-cam` package's; the branch's maps use clamped channel weights.
The end-to-end test runs `main.py --architecture torchvision:resnet18` on the synthetic set.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from torchvision.models import (
    ConvNeXt,
    DenseNet,
    EfficientNet,
    MobileNetV2,
    MobileNetV3,
    RegNet,
    ResNet,
)
from torchvision.models.convnext import CNBlockConfig
from torchvision.models.efficientnet import MBConvConfig
from torchvision.models.mobilenetv3 import InvertedResidualConfig
from torchvision.models.regnet import BlockParams
from torchvision.models.resnet import BasicBlock

import main
from cam import compute_heatmaps, postprocess_maps, raw_maps
from config import ConfigError, get_config
from tests.cam_models import freeze, make_batch, package_heatmaps
from tests.test_cam_parity import numpy_oracle
from wsol.data.synthetic import generate_synthetic_dataset
from wsol.engine.losses import DualBranchLoss
from wsol.engine.optim import build_optimizer
from wsol.metrics.fidelity import FidelityMeter, predicted_classes
from wsol.models.adapter import dual_branch
from wsol.models.checkpoints import (
    load_model_state,
    load_torchvision_weights,
    load_training_checkpoint,
)
from wsol.models.freezing import set_train_mode
from wsol.models.registry import build_model, get_backbone

NUM_CLASSES = 5
SIZE = 64
GRADIENT_METHODS = ("gradcam", "gradcam++", "xgradcam", "layercam")
ATOL = 1e-5

TINY: dict[str, Callable[[], nn.Module]] = {
    "resnet": lambda: ResNet(BasicBlock, [1, 1, 1, 1], num_classes=NUM_CLASSES),
    "regnet": lambda: RegNet(
        BlockParams.from_init_params(depth=2, w_0=8, w_a=8.0, w_m=2.0, group_width=8,
                                     se_ratio=0.25),
        num_classes=NUM_CLASSES, stem_width=8),
    "densenet": lambda: DenseNet(growth_rate=4, block_config=(1, 1), num_init_features=8,
                                 bn_size=2, num_classes=NUM_CLASSES),
    "efficientnet": lambda: EfficientNet(
        [MBConvConfig(1, 3, 1, 8, 8, 1), MBConvConfig(4, 3, 2, 8, 16, 1)], dropout=0.2,
        num_classes=NUM_CLASSES),
    "mobilenet_v2": lambda: MobileNetV2(
        num_classes=NUM_CLASSES, width_mult=0.25,
        inverted_residual_setting=[[1, 8, 1, 1], [2, 16, 1, 2]]),
    "mobilenet_v3": lambda: MobileNetV3(
        [InvertedResidualConfig(8, 3, 16, 8, True, "RE", 2, 1, 1.0),
         InvertedResidualConfig(8, 3, 32, 16, False, "HS", 2, 1, 1.0)],
        last_channel=32, num_classes=NUM_CLASSES),
    "convnext": lambda: ConvNeXt([CNBlockConfig(8, 16, 1), CNBlockConfig(16, None, 1)],
                                 layer_scale=0.5, num_classes=NUM_CLASSES),
}
CAM_FAMILIES = ("resnet", "regnet", "densenet", "efficientnet", "mobilenet_v2")


@functools.cache
def _tiny(family: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    classifier = TINY[family]()
    generator = torch.Generator().manual_seed(seed)
    for module in classifier.modules():
        if isinstance(module, nn.BatchNorm2d):
            count = module.num_features
            module.running_mean.copy_(0.1 * torch.randn(count, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(count, generator=generator))
    return classifier.eval()


def tiny_classifier(family: str, seed: int = 0) -> nn.Module:
    """The family's smallest torchvision classifier, seeded, with random BatchNorm statistics."""
    return copy.deepcopy(_tiny(family, seed))


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return make_batch(2, SIZE, NUM_CLASSES, seed=3)


# --- the output contract ---


@pytest.mark.parametrize("family", TINY)
def test_logits_equal_the_classifier_and_its_state_dict_loads_strictly(
        family: str, batch: tuple) -> None:
    images, _ = batch
    source = tiny_classifier(family, seed=1)
    model = dual_branch(tiny_classifier(family, seed=2), model_structure="vanilla")
    load_model_state(model, source.state_dict(), strict=True)
    assert list(model.state_dict()) == list(source.state_dict())
    with torch.no_grad():
        assert torch.equal(model(images)["logits"], source(images))
    b2 = dual_branch(source)
    branch = b2.head_names[1]
    assert set(b2.state_dict()) - set(source.state_dict()) == {
        key for key in b2.state_dict() if key.startswith(f"{branch}.")}
    with torch.no_grad():
        outputs = b2(images)
    assert torch.equal(outputs["logits"], source(images))
    assert outputs["logits2"].shape == (2, NUM_CLASSES)
    assert not torch.equal(outputs["logits2"], outputs["logits"])


@pytest.mark.parametrize("family", CAM_FAMILIES)
def test_cam_layer_is_the_map_the_linear_head_averages(family: str, batch: tuple) -> None:
    """logit_y = C · mean_hw(CAM_y) + b_y: the CAM layer is the feature map the head reads."""
    images, labels = batch
    model = dual_branch(tiny_classifier(family), family="cam", model_structure="vanilla")
    with torch.no_grad():
        outputs = model(images, labels, return_cam=True)
    channels = model.head_weights(1).shape[1]
    bias = model.get_submodule(model.output_layer_name(1)).bias[labels]
    logit = outputs["logits"].gather(1, labels[:, None])[:, 0]
    torch.testing.assert_close(outputs["cams"].mean((1, 2)) * channels + bias, logit)


# --- branch training ---


def _branch_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                 unfreeze_layer: str) -> None:
    set_train_mode(model, unfreeze_layer)
    optimizer = build_optimizer(model, 0.1)
    loss = DualBranchLoss(NUM_CLASSES)(model(images), labels)
    optimizer.zero_grad()
    loss.total.backward()
    optimizer.step()


@pytest.mark.parametrize("family", TINY)
def test_one_branch_step_changes_the_branch_only(family: str) -> None:
    images, labels = make_batch(4, SIZE, NUM_CLASSES, seed=4)
    model = dual_branch(tiny_classifier(family))
    before = {key: value.clone() for key, value in model.state_dict().items()}
    _branch_step(model, images, labels, "branch2")
    changed = {key for key, value in model.state_dict().items()
               if not torch.equal(before[key], value)}
    branch = model.head_names[1]
    assert changed == {key for key in before if key.startswith(f"{branch}.")}


def test_whole_model_training_with_dropout_in_the_head() -> None:
    """EfficientNet's head drops out in place; both heads still train from one pooled tensor."""
    images, labels = make_batch(4, SIZE, NUM_CLASSES, seed=5)
    model = dual_branch(tiny_classifier("efficientnet"))
    before = {key: value.clone() for key, value in model.state_dict().items()}
    _branch_step(model, images, labels, "all")
    assert not torch.equal(before["classifier.1.weight"], model.classifier[1].weight)
    assert not torch.equal(before["classifier_2.1.weight"], model.classifier_2[1].weight)


def test_clone_init_copies_head_1() -> None:
    model = dual_branch(tiny_classifier("convnext"), branch_init="clone")
    for key, value in model.classifier.state_dict().items():
        assert torch.equal(model.classifier_2.state_dict()[key], value)


# --- heatmaps ---


@pytest.mark.parametrize("family", TINY)
def test_vanilla_gradient_maps_match_the_grad_cam_package(family: str, batch: tuple) -> None:
    images, labels = batch
    model = freeze(dual_branch(tiny_classifier(family), model_structure="vanilla"))
    for method in GRADIENT_METHODS:
        expected = package_heatmaps(model, images, labels, method)
        ours = postprocess_maps(raw_maps(model, images, labels, method), method, size=SIZE)
        assert np.abs(expected).max() > 0, method
        np.testing.assert_allclose(ours, expected, rtol=0, atol=ATOL, err_msg=method)


@pytest.mark.parametrize("family", TINY)
def test_branch_gradient_maps_use_clamped_weights(family: str, batch: tuple) -> None:
    images, labels = batch
    model = freeze(dual_branch(tiny_classifier(family)))
    for method in GRADIENT_METHODS:
        expected = numpy_oracle(model, images, labels, method, "logits2", clamp=True, size=SIZE)
        ours = postprocess_maps(raw_maps(model, images, labels, method), method, size=SIZE)
        np.testing.assert_allclose(ours, expected, rtol=0, atol=ATOL, err_msg=method)
    unclamped = raw_maps(model, images, labels, "gradcam", clamp_negative=False)
    assert not torch.allclose(raw_maps(model, images, labels, "gradcam"), unclamped)


@pytest.mark.parametrize("family", CAM_FAMILIES)
def test_branch_cam_uses_the_positive_head_weights(family: str, batch: tuple) -> None:
    images, labels = batch
    model = freeze(dual_branch(tiny_classifier(family), family="cam"))
    features = model.forward_features(images).numpy()
    weights = model.get_submodule(model.output_layer_name(2)).weight.numpy()[labels.numpy()]
    assert (weights < 0).any()
    expected = (np.where(weights > 0, weights, 0)[:, :, None, None] * features).mean(axis=1)
    ours = raw_maps(model, images, labels, "cam")
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-5, atol=1e-7)
    own = model(images, labels, return_cam=True)["cams2"]
    torch.testing.assert_close(ours, own)


def test_fidelity_metrics_take_a_wrapped_model(batch: tuple) -> None:
    images, _ = batch
    model = freeze(dual_branch(tiny_classifier("mobilenet_v3")))
    outputs = model(images)
    predicted = predicted_classes(outputs)
    heatmaps = compute_heatmaps(model, images, predicted, "gradcam++", postprocess="torch")
    meter = FidelityMeter(num_steps=4)
    meter.update(model, images, torch.nn.functional.interpolate(
        heatmaps[:, None], size=SIZE, mode="bilinear")[:, 0], predicted, outputs=outputs)
    result = meter.compute()
    assert result["num_images"] == 2
    assert all(np.isfinite(value) for value in result.values())


# --- the registry and its errors ---


def test_torchvision_names_resolve_without_building() -> None:
    spec = get_backbone("torchvision:resnext50_32x4d")
    assert spec.families == ("cam", "grad")
    assert spec.models["grad"].architecture == "torchvision:resnext50_32x4d"
    assert spec.models["grad"].head_names == ("fc", "fc2")
    assert spec.torchvision_files == ("resnext50_32x4d-1a0047aa.pth",
                                      "resnext50_32x4d-7cdf4587.pth")
    convnext = get_backbone("torchvision:convnext_tiny")
    assert convnext.families == ("grad",)
    assert convnext.models["grad"].head_names == ("classifier", "classifier_2")
    assert get_backbone("torchvision:resnet18") is get_backbone("torchvision:resnet18")


@pytest.mark.parametrize("name", ["vgg16", "vit_b_16", "resnet", "nope"])
def test_unsupported_names_list_the_families(name: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main.main(["--architecture", f"torchvision:{name}", "--epochs", "1"])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"torchvision:{name}" in error
    assert "resnet, wide_resnet, resnext, regnet, densenet, efficientnet, mobilenet_v2, " \
           "mobilenet_v3, convnext" in error


def test_a_class_name_is_not_built_by_name(capsys: pytest.CaptureFixture) -> None:
    """`torchvision:ResNet` is what `dual_branch` records without a model name."""
    assert dual_branch(tiny_classifier("resnet")).architecture == "torchvision:ResNet"
    assert get_backbone("torchvision:ResNet").families == ()
    with pytest.raises(SystemExit):
        main.main(["--architecture", "torchvision:ResNet", "--epochs", "1"])
    assert "cannot be built by name" in capsys.readouterr().err.strip().splitlines()[-1]


def test_dual_branch_rejects_what_it_cannot_wrap() -> None:
    with pytest.raises(ValueError, match="not linear on the global average"):
        dual_branch(tiny_classifier("convnext"), family="cam")
    with pytest.raises(ValueError, match="cannot wrap a Sequential"):
        dual_branch(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2)))

    class Tweaked(MobileNetV2):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) * 2

    with pytest.raises(ValueError, match="overrides torchvision's MobileNetV2.forward"):
        dual_branch(Tweaked(num_classes=3, width_mult=0.25))
    with pytest.raises(ValueError, match="architecture must be torchvision:<name> of a ResNet"):
        dual_branch(tiny_classifier("resnet"), architecture="torchvision:densenet121")


def test_other_class_count_replaces_head_1(batch: tuple) -> None:
    images, _ = batch
    model = dual_branch(tiny_classifier("efficientnet"), 3).eval()
    outputs = model(images)
    assert outputs["logits"].shape == outputs["logits2"].shape == (2, 3)
    assert model.classifier[0].inplace and not model.classifier_2[0].inplace


def test_torchvision_weights_come_from_the_given_file(tmp_path: Path) -> None:
    """--pretrained_path names the file (or its folder); body and head 1 come from it."""
    torch.manual_seed(0)
    reference = torchvision.models.mobilenet_v3_small()
    path = tmp_path / "mobilenet_v3_small-047dcff4.pth"
    torch.save({"state_dict": reference.state_dict()}, path)
    flags = ["--architecture", "torchvision:mobilenet_v3_small", "--method", "gradcam",
             "--epochs", "0", "--unfreeze_layer", "all", "--pretrained_path"]
    assert get_config([*flags, str(tmp_path)]).pretrained_path == str(tmp_path)
    with pytest.raises(ConfigError, match="never downloaded"):
        get_config([*flags, str(tmp_path / "missing.pth")])
    model = build_model("torchvision:mobilenet_v3_small", "grad", NUM_CLASSES,
                        model_structure="b2")
    report = load_torchvision_weights(model, path)
    assert {key.split(".")[0] for key in report.missing_keys} == {"classifier", "classifier_2"}
    assert torch.equal(model.features[4].block[0][0].weight,
                       reference.features[4].block[0][0].weight)


def test_old_densenet_key_names_are_renamed() -> None:
    """torchvision's DenseNet files say ``norm.1`` where the modules say ``norm1``."""
    classifier = tiny_classifier("densenet")
    state = {key: value for key, value in classifier.state_dict().items()
             if not key.endswith("num_batches_tracked")}  # absent from files before PyTorch 0.4.1
    old_names = {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", key): value
                 for key, value in state.items()}
    assert "features.denseblock1.denselayer1.norm.1.weight" in old_names
    rename = get_backbone("torchvision:densenet121").adapt_torchvision
    assert rename(old_names, dual_branch(classifier)).keys() == state.keys()


# --- README and main.py ---


def _readme_snippet() -> str:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Bring your own classifier", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_snippet_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's code as written, on a saved resnet18 and two tiny random batches."""
    monkeypatch.chdir(tmp_path)
    torch.save(torchvision.models.resnet18(num_classes=200).state_dict(), "my_resnet18.pth")
    batches = [make_batch(4, 32, 200)]
    namespace = {"train_loader": batches, "test_loader": batches}
    exec(compile(_readme_snippet(), "README.md", "exec"), namespace)
    assert namespace["heatmaps"].shape == (4, 224, 224)
    assert namespace["model"].architecture == "torchvision:resnet18"


@pytest.fixture()
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)


def test_main_trains_resumes_and_evaluates_the_branch_of_torchvision_resnet18(
        tmp_path: Path, no_downloads: None) -> None:
    generate_synthetic_dataset(str(tmp_path / "dataset"), str(tmp_path / "metadata"),
                               num_train=8, num_val=0, num_test=2, image_size=64)
    flags = ["--dataset_name", "SYNTHETIC", "--data_root", str(tmp_path / "dataset"),
             "--metadata_root", str(tmp_path / "metadata"), "--mask_root",
             str(tmp_path / "dataset"), "--root", str(tmp_path / "exp"), "--architecture",
             "torchvision:resnet18", "--batch_size", "8", "--workers", "0", "--device", "cpu"]
    train = ["--crop_size", "32", "--resize_size", "32", "--epochs", "1", "--lr", "0.01"]
    vanilla = tmp_path / "exp" / "vanilla" / "last_checkpoint.pth.tar"
    assert main.main(flags + train + ["--experiment_name", "vanilla", "--method", "gradcam",
                                      "--pretrained", "false", "--unfreeze_layer", "all"]) == 0
    branch = ["--experiment_name", "b2", "--method", "gradcam", "--model_structure", "b2",
              "--unfreeze_layer", "branch2", "--ft_ckpt", str(vanilla)]
    assert main.main(flags + train + branch) == 0
    assert main.main(flags + train + branch + ["--epochs", "2", "--resume", "auto"]) == 0
    before = load_training_checkpoint(vanilla)["state_dict"]
    after = load_training_checkpoint(tmp_path / "exp" / "b2" / "last_checkpoint.pth.tar")
    assert (after["architecture"], after["epoch"]) == ("torchvision:resnet18", 2)
    assert set(after["state_dict"]) - set(before) == {"fc2.weight", "fc2.bias"}
    assert all(torch.equal(value, after["state_dict"][key]) for key, value in before.items())
    for method in ("gradcam", "cam"):
        assert main.main(flags + ["--experiment_name", "b2", "--method", method,
                                  "--model_structure", "b2", "--eval_only",
                                  "--num_overlays", "1"]) == 0
        results = json.loads((tmp_path / "exp" / "b2" / f"results_{method}.json").read_text())
        assert results["metrics"]["num_images"] == 2
        assert 0.0 <= results["metrics"]["maxboxacc_v2"] <= 100.0
