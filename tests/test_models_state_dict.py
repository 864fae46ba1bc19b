"""State-dict names and shapes (SPEC §3.7), strict round trips, initialisation (SPEC §3.8)."""

import pytest
import torch
import torchvision

from wsol.models.checkpoints import load_model_checkpoint, load_model_state, save_checkpoint
from wsol.models.registry import ARCHITECTURES, FAMILIES, build_model

K = 5



def _meta(architecture, family, structure="vanilla", large=False, num_classes=K):
    with torch.device("meta"):
        return build_model(
            architecture, family, num_classes, model_structure=structure, large_feature_map=large
        )


def _shapes(module):
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


def _torchvision_shapes(name, **kwargs):
    with torch.device("meta"):
        return _shapes(getattr(torchvision.models, name)(weights=None, **kwargs))


def test_vgg16_cam_keys():
    shapes = _shapes(_meta("vgg16", "cam", "b2"))
    convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    assert len(shapes) == 2 * len(convs) + 6
    assert {f"features.{i}.weight" for i in convs} <= set(shapes)
    assert shapes["conv6.weight"] == (1024, 512, 3, 3)
    assert shapes["fc.weight"] == shapes["fc2.weight"] == (K, 1024)
    assert shapes["fc.bias"] == shapes["fc2.bias"] == (K,)
    large = _shapes(_meta("vgg16", "cam", large=True))
    assert {key.split(".")[1] for key in large if key.startswith("features.")} == {
        str(i) for i in [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 23, 25, 27]
    }
    assert "fc2.weight" not in large


def test_vgg16_grad_keys_equal_torchvision():
    shapes = _shapes(_meta("vgg16", "grad", num_classes=1000))
    assert shapes == _torchvision_shapes("vgg16")
    b2 = _shapes(_meta("vgg16", "grad", "b2"))
    assert len(b2) == 26 + 12
    for index, shape in ((0, (4096, 25088)), (3, (4096, 4096)), (6, (K, 4096))):
        assert b2[f"classifier.{index}.weight"] == b2[f"classifier_2.{index}.weight"] == shape


@pytest.mark.parametrize("family", FAMILIES)
def test_resnet50_keys_equal_torchvision(family):
    shapes = _shapes(_meta("resnet50", family, num_classes=1000))
    assert shapes == _torchvision_shapes("resnet50")
    b2 = _shapes(_meta("resnet50", family, "b2"))
    assert len(b2) == len(shapes) + 2
    assert b2["fc.weight"] == b2["fc2.weight"] == (K, 2048)
    assert b2["layer4.0.downsample.0.weight"] == (2048, 1024, 1, 1)
    assert b2["layer1.0.bn1.num_batches_tracked"] == ()


def test_inception_v3_cam_keys():
    shapes = _shapes(_meta("inception_v3", "cam", "b2"))
    reference = _torchvision_shapes("inception_v3", aux_logits=False, init_weights=False)
    backbone = {
        key: shape for key, shape in reference.items() if not key.startswith(("Mixed_7", "fc."))
    }
    heads = {
        "SPG_A3_1b.0.weight": (1024, 768, 3, 3),
        "SPG_A3_1b.0.bias": (1024,),
        "SPG_A3_2b.0.weight": (1024, 1024, 3, 3),
        "SPG_A3_2b.0.bias": (1024,),
        "SPG_A4.weight": (K, 1024, 1, 1),
        "SPG_A4.bias": (K,),
        "SPG_A4_2.weight": (K, 1024, 1, 1),
        "SPG_A4_2.bias": (K,),
    }
    assert shapes == {**backbone, **heads}
    assert shapes["Mixed_6a.branch3x3.conv.weight"] == (384, 288, 3, 3)
    assert shapes["Conv2d_1a_3x3.bn.running_var"] == (32,)


def test_inception_v3_grad_keys_equal_torchvision():
    shapes = _shapes(_meta("inception_v3", "grad", num_classes=1000))
    assert shapes == _torchvision_shapes("inception_v3", aux_logits=False, init_weights=False)
    b2 = _shapes(_meta("inception_v3", "grad", "b2"))
    assert b2["fc2.weight"] == (K, 2048)
    assert not any(key.startswith("AuxLogits") for key in b2)


def _materialise(model):
    """Real CPU tensors with a distinct constant per entry (cheap, and swaps would show)."""
    model.to_empty(device="cpu")
    with torch.no_grad():
        for index, tensor in enumerate(model.state_dict().values()):
            tensor.fill_(index)
    return model


# The b2 VGG16 grad family holds 240M parameters (1 GB): it round-trips on the meta device, which
# checks names and shapes as strictly but moves no data.
REAL_ROUND_TRIPS = [
    (architecture, family)
    for family in FAMILIES
    for architecture in ARCHITECTURES
    if (architecture, family) != ("vgg16", "grad")
]


@pytest.mark.parametrize(("architecture", "family"), REAL_ROUND_TRIPS)
def test_strict_round_trip(tmp_path, architecture, family):
    source = _materialise(_meta(architecture, family, "b2"))
    torch.save({"state_dict": source.state_dict(), "epoch": 1}, tmp_path / "model.pth")
    fresh = _materialise(_meta(architecture, family, "b2"))
    with torch.no_grad():
        for tensor in fresh.state_dict().values():
            tensor.zero_()
    checkpoint = torch.load(tmp_path / "model.pth", weights_only=True, mmap=True)
    report = load_model_state(fresh, checkpoint, strict=True)
    assert report.missing_keys == report.unexpected_keys == []
    loaded = fresh.state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(loaded[key], value), key


@pytest.mark.parametrize("structure", ["vanilla", "b2"])
def test_strict_round_trip_of_vgg16_grad_on_meta(tmp_path, structure):
    torch.save({"state_dict": _meta("vgg16", "grad", structure).state_dict()}, tmp_path / "m.pth")
    checkpoint = torch.load(tmp_path / "m.pth", weights_only=True)
    fresh = _meta("vgg16", "grad", structure)
    report = load_model_state(fresh, checkpoint, strict=True)
    assert report.missing_keys == report.unexpected_keys == []


def test_round_trip_of_real_initialisation(tmp_path):
    source = build_model("inception_v3", "cam", K, model_structure="b2", large_feature_map=True)
    path = save_checkpoint(tmp_path / "model.pth", {"state_dict": source.state_dict()})
    fresh = build_model("inception_v3", "cam", K, model_structure="b2", large_feature_map=True)
    assert load_model_checkpoint(fresh, path).missing_keys == []
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(),
                                                  fresh.state_dict().values(), strict=True))


def test_initialisation_of_linear_heads_and_batchnorm():
    torch.manual_seed(0)
    model = build_model("resnet50", "cam", 200, model_structure="b2")
    assert torch.all(model.fc2.bias == 0)
    assert abs(model.fc2.weight.std().item() - 0.01) < 0.001
    assert torch.all(model.bn1.weight == 1)
    assert torch.all(model.bn1.bias == 0)
    bound = (6 / (3 * 49 + 64 * 49)) ** 0.5
    assert model.conv1.weight.abs().max() <= bound


def test_initialisation_of_vgg_convs_is_he():
    torch.manual_seed(0)
    model = build_model("vgg16", "cam", 10)
    std = model.conv6.weight.std().item()
    assert abs(std - (2 / (1024 * 9)) ** 0.5) < 0.001
    assert torch.all(model.conv6.bias == 0)


def test_initialisation_of_inception_grad_is_truncated_normal():
    torch.manual_seed(0)
    model = build_model("inception_v3", "grad", 10, model_structure="b2")
    weight = model.Mixed_7c.branch3x3_1.conv.weight
    assert abs(weight.std().item() - 0.1) < 0.005
    assert weight.abs().max() <= 2
    assert abs(model.fc2.weight.std().item() - 0.1) < 0.01
    assert torch.any(model.fc2.bias != 0)
    assert model.fc2.bias.abs().max() <= 2048 ** -0.5


def test_initialisation_of_inception_cam_head_is_xavier():
    torch.manual_seed(0)
    model = build_model("inception_v3", "cam", 10, model_structure="b2")
    bound = (6 / (1024 + 10)) ** 0.5
    assert model.SPG_A4_2.weight.abs().max() <= bound
    assert torch.all(model.SPG_A4_2.bias == 0)
