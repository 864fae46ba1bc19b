"""torchvision weights (SPEC §3.9), fine-tuning checkpoints (§3.10), mismatches, atomic saves."""

import os
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from wsol.models import checkpoints
from wsol.models.checkpoints import (
    CheckpointMismatchError,
    CheckpointReadError,
    extract_state_dict,
    load_finetune_checkpoint,
    load_model_state,
    load_torchvision_weights,
    load_training_checkpoint,
    save_checkpoint,
    torchvision_weights_path,
)
from wsol.models.registry import build_model

K = 5
VGG_14X14_TO_28X28 = {0: 0, 2: 2, 5: 5, 7: 7, 10: 10, 12: 12, 14: 14, 17: 17, 19: 19, 21: 21,
                      24: 23, 26: 25, 28: 27}



def _randomise_buffers(model):
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked.fill_(7)
    return model


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A hub cache folder holding randomly initialised torchvision models in torchvision's format.

    VGG16's 124M-parameter classifier stays on the meta device (saved without data); its
    convolutions are real. Inception is stored under torchvision's current file name, to check
    the fallback from the authors' name.
    """
    root = tmp_path_factory.mktemp("hub")
    folder = root / "checkpoints"
    folder.mkdir()
    torch.manual_seed(0)
    with torch.device("meta"):
        vgg = torchvision.models.vgg16(weights=None)
    vgg.features.to_empty(device="cpu")
    for module in vgg.features:
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, std=0.01)
            nn.init.normal_(module.bias)
    torch.save(vgg.state_dict(), folder / "vgg16-397923af.pth")
    resnet = _randomise_buffers(torchvision.models.resnet50(weights=None))
    torch.save(resnet.state_dict(), folder / "resnet50-19c8e357.pth")
    inception = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    _randomise_buffers(inception)
    torch.save(inception.state_dict(), folder / "inception_v3_google-0cc3c7bd.pth")
    return root


@pytest.fixture
def use_hub(hub, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    return hub / "checkpoints"


def _reference(folder, name):
    return torch.load(folder / name, weights_only=True)


def _snapshot(model, prefix):
    return {k: v.clone() for k, v in model.state_dict().items() if k.startswith(prefix)}


@pytest.mark.parametrize("large", [False, True])
def test_vgg16_cam_from_torchvision(use_hub, large):
    model = build_model("vgg16", "cam", K, model_structure="b2", large_feature_map=large)
    kept = _snapshot(model, ("conv6.", "fc"))
    report = load_torchvision_weights(model, use_hub / "vgg16-397923af.pth")
    reference = _reference(use_hub, "vgg16-397923af.pth")
    state = model.state_dict()
    for source, target in VGG_14X14_TO_28X28.items():
        target = target if large else source
        for kind in ("weight", "bias"):
            mapped = state[f"features.{target}.{kind}"]
            assert torch.equal(mapped, reference[f"features.{source}.{kind}"])
    assert all(torch.equal(state[key], value) for key, value in kept.items())
    assert sorted(report.missing_keys) == sorted(kept)
    assert report.unexpected_keys == []


@pytest.mark.parametrize("keep_head", [False, True])
def test_vgg16_grad_from_torchvision(use_hub, keep_head):
    num_classes = 1000 if keep_head else K
    with torch.device("meta"):
        model = build_model("vgg16", "grad", num_classes, model_structure="b2",
                            large_feature_map=True)
    model.features.to_empty(device="cpu")
    report = load_torchvision_weights(model, keep_head=keep_head)
    reference = _reference(use_hub, "vgg16-397923af.pth")
    assert torch.equal(model.features[27].weight, reference["features.28.weight"])
    assert torch.equal(model.features[23].bias, reference["features.24.bias"])
    missing = {key.split(".")[0] for key in report.missing_keys}
    assert missing == ({"classifier_2"} if keep_head else {"classifier", "classifier_2"})


@pytest.mark.parametrize("family", ["cam", "grad"])
def test_resnet50_from_torchvision_drops_fc_for_other_datasets(use_hub, family):
    model = build_model("resnet50", family, K, model_structure="b2")
    heads = _snapshot(model, "fc")
    report = load_torchvision_weights(model)
    reference = _reference(use_hub, "resnet50-19c8e357.pth")
    state = model.state_dict()
    backbone = {key: value for key, value in reference.items() if "fc" not in key}
    assert all(torch.equal(state[key], value) for key, value in backbone.items())
    assert all(torch.equal(state[key], value) for key, value in heads.items())
    assert sorted(report.missing_keys) == sorted(heads)


def test_resnet50_keeps_the_imagenet_head_and_clones_it(use_hub):
    model = build_model("resnet50", "grad", 1000, model_structure="b2", branch_init="clone")
    report = load_torchvision_weights(model, keep_head=True)
    reference = _reference(use_hub, "resnet50-19c8e357.pth")
    assert torch.equal(model.fc.weight, reference["fc.weight"])
    assert torch.equal(model.fc2.weight, reference["fc.weight"])
    assert torch.equal(model.fc2.bias, reference["fc.bias"])
    assert report.missing_keys == ["fc2.weight", "fc2.bias"]


def test_inception_v3_cam_from_torchvision(use_hub):
    model = build_model("inception_v3", "cam", K, model_structure="b2")
    report = load_torchvision_weights(model)
    reference = _reference(use_hub, "inception_v3_google-0cc3c7bd.pth")
    state = model.state_dict()
    for key, value in reference.items():
        if key.startswith(("Mixed_7", "AuxLogits", "fc.")):
            assert key not in state
        else:
            assert torch.equal(state[key], value), key
    assert {key.split(".")[0] for key in report.missing_keys} == {
        "SPG_A3_1b", "SPG_A3_2b", "SPG_A4", "SPG_A4_2"
    }


def test_inception_v3_grad_from_an_authors_folder(use_hub, tmp_path):
    os.symlink(use_hub / "inception_v3_google-0cc3c7bd.pth", tmp_path / "inceptionv3.pth")
    model = build_model("inception_v3", "grad", 1000, model_structure="b2")
    report = load_torchvision_weights(model, tmp_path, keep_head=True)
    reference = _reference(use_hub, "inception_v3_google-0cc3c7bd.pth")
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in reference.items() if "AuxLogits" not in k)
    assert report.missing_keys == ["fc2.weight", "fc2.bias"]


def test_missing_weights_name_the_path_and_the_download(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError) as error:
        torchvision_weights_path("vgg16")
    message = str(error.value)
    assert str(tmp_path / "checkpoints" / "vgg16-397923af.pth") in message
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in message
    assert "download=True" in message
    with pytest.raises(FileNotFoundError, match=r"nothing\.pth"):
        torchvision_weights_path("resnet50", tmp_path / "nothing.pth")


def test_download_only_when_asked(tmp_path, monkeypatch):
    calls = []

    def fake_download(url, destination, hash_prefix=None):
        calls.append((url, hash_prefix))
        Path(destination).write_bytes(b"")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    path = torchvision_weights_path("resnet50", download=True)
    assert path == tmp_path / "checkpoints" / "resnet50-19c8e357.pth"
    assert calls == [("https://download.pytorch.org/models/resnet50-19c8e357.pth", "19c8e357")]


def test_wrong_torchvision_file_is_reported(use_hub):
    model = build_model("inception_v3", "cam", K)
    with pytest.raises(CheckpointMismatchError, match="torchvision inception_v3"):
        load_torchvision_weights(model, use_hub / "resnet50-19c8e357.pth")


def test_keep_head_needs_1000_classes(use_hub):
    model = build_model("resnet50", "cam", K)
    with pytest.raises(CheckpointMismatchError, match="1000"):
        load_torchvision_weights(model, keep_head=True)


@pytest.fixture(scope="module")
def vanilla_vgg(tmp_path_factory):
    """A vanilla VGG16-CAM checkpoint as saved by the authors' DataParallel trainer."""
    torch.manual_seed(1)
    model = build_model("vgg16", "cam", K)
    path = tmp_path_factory.mktemp("ft") / "last_checkpoint.pth.tar"
    state = {f"module.{key}": value for key, value in model.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 50, "architecture": "vgg16"}, path)
    return path, model.state_dict()


def test_finetune_checkpoint_fills_all_but_head2(vanilla_vgg):
    path, source = vanilla_vgg
    model = build_model("vgg16", "cam", K, model_structure="b2")
    head2 = _snapshot(model, "fc2.")
    report = load_finetune_checkpoint(model, path, unfreeze_layer="fc2")
    state = model.state_dict()
    assert all(torch.equal(state[key], value) for key, value in source.items())
    assert all(torch.equal(state[key], value) for key, value in head2.items())
    assert report.missing_keys == ["fc2.weight", "fc2.bias"]
    assert report.unexpected_keys == []


def test_finetune_checkpoint_with_unfreeze_fc_goes_into_fc2(vanilla_vgg):
    path, source = vanilla_vgg
    model = build_model("vgg16", "cam", K, model_structure="b2")
    head1 = _snapshot(model, "fc.")
    report = load_finetune_checkpoint(model, path, unfreeze_layer="fc")
    assert torch.equal(model.fc2.weight, source["fc.weight"])
    assert torch.equal(model.fc2.bias, source["fc.bias"])
    assert torch.equal(model.fc.weight, head1["fc.weight"])
    assert report.missing_keys == ["fc.weight", "fc.bias"]
    vanilla = build_model("vgg16", "cam", K)
    with pytest.raises(CheckpointMismatchError, match="needs model_structure=b2"):
        load_finetune_checkpoint(vanilla, path, unfreeze_layer="fc")


def test_finetune_checkpoint_then_clone(vanilla_vgg):
    path, source = vanilla_vgg
    model = build_model("vgg16", "cam", K, model_structure="b2", branch_init="clone")
    load_finetune_checkpoint(model, path)
    assert torch.equal(model.fc2.weight, source["fc.weight"])
    assert torch.equal(model.fc2.bias, source["fc.bias"])
    model.eval()
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, 32, 32))
    assert torch.equal(outputs["logits"], outputs["logits2"])


def test_unfreeze_fc_is_a_plain_load_for_the_grad_family(use_hub):
    model = build_model("resnet50", "grad", 1000, model_structure="b2")
    load_finetune_checkpoint(model, use_hub / "resnet50-19c8e357.pth", unfreeze_layer="fc")
    assert torch.equal(model.fc.weight, _reference(use_hub, "resnet50-19c8e357.pth")["fc.weight"])


def test_mismatch_is_reported_before_anything_is_copied(vanilla_vgg):
    path, _ = vanilla_vgg
    model = build_model("vgg16", "cam", 7, model_structure="b2")
    before = _snapshot(model, "")
    with pytest.raises(CheckpointMismatchError, match=r"num_classes mismatch.*5 classes.*=7"):
        load_finetune_checkpoint(model, path)
    assert all(torch.equal(model.state_dict()[key], value) for key, value in before.items())


def _meta(architecture, family, structure="vanilla", num_classes=K, large=False):
    with torch.device("meta"):
        return build_model(architecture, family, num_classes, model_structure=structure,
                           large_feature_map=large)


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        (("resnet50", "cam"), ("vgg16", "cam"), "architecture mismatch.*resnet50.*vgg16"),
        (("vgg16", "cam"), ("vgg16", "grad"), "family mismatch.*cam-family vgg16"),
        (("inception_v3", "grad"), ("inception_v3", "cam"), "family mismatch.*grad-family"),
        (("resnet50", "cam", "vanilla", 200), ("resnet50", "cam"), "200 classes.*num_classes=5"),
        (("vgg16", "grad", "vanilla", 200), ("vgg16", "grad"), "200 classes"),
        (("inception_v3", "cam", "b2"), ("inception_v3", "cam"), "model_structure.*is vanilla"),
        (("resnet50", "grad"), ("resnet50", "grad", "b2"), "model_structure.*no sigmoid branch"),
        (("vgg16", "cam", "vanilla", K, False), ("vgg16", "cam", "vanilla", K, True),
         r"layout.*14x14.*28x28"),
    ],
)
def test_mismatches_are_named(source, target, message):
    state = _meta(*source).state_dict()
    with pytest.raises(CheckpointMismatchError, match=message):
        load_model_state(_meta(*target), state, strict=True)


def test_finetune_accepts_a_vanilla_checkpoint_in_a_b2_model_but_strict_does_not():
    state = _meta("resnet50", "cam").state_dict()
    report = load_model_state(_meta("resnet50", "cam", "b2"), state, strict=False)
    assert report.missing_keys == ["fc2.weight", "fc2.bias"]


def test_unknown_content_is_reported():
    with pytest.raises(CheckpointMismatchError, match="holds no resnet50 backbone"):
        load_model_state(_meta("resnet50", "cam"), {"foo.weight": torch.zeros(1)})
    with pytest.raises(CheckpointMismatchError, match="not a tensor"):
        load_model_state(_meta("resnet50", "cam"), {"weights": [1, 2]})


def test_extract_state_dict_strips_only_leading_wrappers():
    tensor = torch.zeros(1)
    state = extract_state_dict({"model": {"module._orig_mod.layer.module.x": tensor}, "epoch": 1})
    assert list(state) == ["layer.module.x"]
    assert list(extract_state_dict({"state_dict": {"fc.weight": tensor}})) == ["fc.weight"]
    assert list(extract_state_dict({"fc.module.weight": tensor})) == ["fc.module.weight"]


class _Unpicklable:
    def __reduce__(self):
        raise TypeError("cannot be saved")


def test_save_checkpoint_is_atomic(tmp_path):
    path = tmp_path / "run" / "last_checkpoint.pth.tar"
    state = {"model": {"w": torch.arange(3)}, "epoch": 2, "config": {"lr": 0.01, "name": "x"}}
    assert save_checkpoint(path, state) == path
    assert sorted(os.listdir(path.parent)) == ["last_checkpoint.pth.tar"]
    loaded = load_training_checkpoint(path)
    assert loaded["epoch"] == 2
    assert loaded["config"] == {"lr": 0.01, "name": "x"}
    assert torch.equal(loaded["model"]["w"], torch.arange(3))
    with pytest.raises(TypeError, match="cannot be saved"):
        save_checkpoint(path, {"epoch": 3, "bad": _Unpicklable()})
    assert sorted(os.listdir(path.parent)) == ["last_checkpoint.pth.tar"]
    assert load_training_checkpoint(path)["epoch"] == 2


class _Custom:
    pass


def test_load_training_checkpoint_is_weights_only(tmp_path):
    torch.save({"epoch": 1, "object": _Custom()}, tmp_path / "unsafe.pth")
    with pytest.raises(CheckpointReadError, match="_Custom .*not unpickled"):
        load_training_checkpoint(tmp_path / "unsafe.pth")
    torch.save(torch.zeros(2), tmp_path / "tensor.pth")
    with pytest.raises(ValueError, match="not a checkpoint dict"):
        load_training_checkpoint(tmp_path / "tensor.pth")
    with pytest.raises(FileNotFoundError, match=r"missing\.pth"):
        load_training_checkpoint(tmp_path / "missing.pth")


def test_files_are_read_on_the_cpu_with_weights_only(monkeypatch, tmp_path):
    calls = []
    original = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    torch.save({"epoch": 1}, tmp_path / "c.pth")
    monkeypatch.setattr(checkpoints.torch, "load", spy)
    load_training_checkpoint(tmp_path / "c.pth")
    assert calls == [{"map_location": "cpu", "weights_only": True}]
