"""Feature maps at 224×224 (SPEC Appendix A) and the output contract (SPEC §3.6)."""

import pytest
import torch

from wsol.models.registry import ARCHITECTURES, BACKBONES, FAMILIES, build_model, get_backbone

NUM_CLASSES = 7


# (architecture, family, large_feature_map) -> (channels, side) of the feature map at 224
APPENDIX_A = {
    ("vgg16", "cam", False): (1024, 14),
    ("vgg16", "cam", True): (1024, 28),
    ("resnet50", "cam", False): (2048, 14),
    ("resnet50", "cam", True): (2048, 28),
    ("inception_v3", "cam", False): (1024, 14),
    ("inception_v3", "cam", True): (1024, 28),
    ("vgg16", "grad", False): (512, 14),
    ("vgg16", "grad", True): (512, 28),
    ("inception_v3", "grad", False): (2048, 5),
    ("inception_v3", "grad", True): (2048, 5),
}
CAM_LAYERS = {
    ("vgg16", "cam", False): ("relu", torch.nn.ReLU),
    ("vgg16", "cam", True): ("relu", torch.nn.ReLU),
    ("resnet50", "cam", False): ("layer4.2", torch.nn.Module),
    ("inception_v3", "cam", False): ("cam_features", torch.nn.Identity),
    ("vgg16", "grad", False): ("features.29", torch.nn.ReLU),
    ("vgg16", "grad", True): ("features.28", torch.nn.ReLU),
    ("inception_v3", "grad", False): ("Mixed_7c", torch.nn.Module),
}


@pytest.mark.parametrize(("architecture", "family", "large"), list(APPENDIX_A))
def test_feature_map_at_224(architecture, family, large):
    """Shapes propagate on the meta device; the CAM layer's output is the returned feature map."""
    with torch.device("meta"):
        model = build_model(architecture, family, NUM_CLASSES, large_feature_map=large).eval()
        captured = []
        layer = dict(model.named_modules())[model.cam_layer]
        handle = layer.register_forward_hook(
            lambda module, inputs, output: captured.append(output))
        features = model.forward_features(torch.empty(1, 3, 224, 224))
    handle.remove()
    channels, side = APPENDIX_A[(architecture, family, large)]
    assert features.shape == (1, channels, side, side)
    assert len(captured) == 1 and captured[0] is features


@pytest.mark.parametrize(("architecture", "family", "large"), list(CAM_LAYERS))
def test_cam_layer_names(architecture, family, large):
    with torch.device("meta"):
        model = build_model(architecture, family, NUM_CLASSES, large_feature_map=large)
    name, kind = CAM_LAYERS[(architecture, family, large)]
    assert model.cam_layer == name
    assert isinstance(dict(model.named_modules())[name], kind)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_attributes_and_output_keys_on_meta(architecture, family):
    x = torch.empty(2, 3, 224, 224, device="meta")
    for structure, keys in (("vanilla", {"logits"}), ("b2", {"logits", "logits2"})):
        with torch.device("meta"):
            model = build_model(architecture, family, NUM_CLASSES, model_structure=structure)
        assert (model.architecture, model.family) == (architecture, family)
        assert (model.model_structure, model.num_classes) == (structure, NUM_CLASSES)
        outputs = model.eval()(x)
        assert set(outputs) == keys
        assert all(value.shape == (2, NUM_CLASSES) for value in outputs.values())


def test_cam_family_outputs():
    model = build_model("resnet50", "cam", NUM_CLASSES, model_structure="b2").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        outputs = model(x, return_cam=True)
        given = model(x, labels=[3, 5], return_cam=True)
    assert set(outputs) == {"logits", "logits2", "labels", "cams", "cams2"}
    assert outputs["cams"].shape == outputs["cams2"].shape == (2, 4, 4)
    torch.testing.assert_close(outputs["labels"], outputs["logits"].argmax(dim=1))
    assert given["labels"].tolist() == [3, 5]
    with torch.no_grad():
        expected = model.cams_from_features(model.forward_features(x), torch.tensor([3, 5]))
    assert torch.equal(given["cams2"], expected["cams2"])
    assert model.cam_reduction == "mean"
    assert model.head_weights(2).shape == (NUM_CLASSES, 2048)
    with pytest.raises(ValueError, match="shape"):
        model(x, labels=torch.tensor([1]), return_cam=True)


def test_grad_family_has_no_closed_form_cam():
    with torch.device("meta"):
        model = build_model("resnet50", "grad", NUM_CLASSES)
    assert model.cam_reduction is None
    with pytest.raises(ValueError, match="CAM family"):
        model(torch.empty(1, 3, 64, 64, device="meta"), return_cam=True)
    with pytest.raises(ValueError, match="CAM family"):
        model.head_weights(1)


def test_vanilla_has_no_branch2():
    with torch.device("meta"):
        model = build_model("vgg16", "cam", NUM_CLASSES)
    with pytest.raises(ValueError, match="vanilla"):
        model.head_weights(2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"architecture": "resnet18"}, "architecture"),
        ({"family": "gradcam"}, "family"),
        ({"model_structure": "b3"}, "model_structure"),
        ({"branch_init": "copy"}, "branch_init"),
        ({"branch_init": "clone"}, "b2"),
        ({"num_classes": 0}, "num_classes"),
    ],
)
def test_build_model_rejects_bad_arguments(kwargs, message):
    arguments = {"architecture": "vgg16", "family": "cam", "num_classes": NUM_CLASSES, **kwargs}
    with torch.device("meta"), pytest.raises(ValueError, match=message):
        build_model(
            arguments.pop("architecture"), arguments.pop("family"), arguments.pop("num_classes"),
            **arguments,
        )


def test_registry_is_complete():
    assert FAMILIES == ("cam", "grad")
    assert ARCHITECTURES == ("vgg16", "resnet50", "inception_v3", "tiny_cnn")
    for name, spec in BACKBONES.items():
        assert get_backbone(name) is spec and spec.families == FAMILIES
        for family, model_class in spec.models.items():
            assert (model_class.architecture, model_class.family) == (name, family)
    with pytest.raises(ValueError, match="unknown architecture 'resnet5'; choose one of vgg16"):
        get_backbone("resnet5")
