"""Numerics: torchvision parity, the clone init (SPEC A1), closed-form CAMs (SPEC §6.1)."""

import numpy as np
import pytest
import torch
import torchvision

from wsol.models.registry import build_model, clone_branch

K = 6



def _images(batch=2, side=64, seed=0):
    return torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(seed))


def test_vgg16_cam_features_equal_torchvision_features():
    model = build_model("vgg16", "cam", K).eval()
    with torch.device("meta"):
        reference = torchvision.models.vgg16(weights=None)
    reference.features.to_empty(device="cpu")
    reference.features.load_state_dict(model.features.state_dict(), strict=True)
    x = _images()
    with torch.no_grad():
        ours = model.features(x)
        theirs = reference.features[:-1](x)
    assert ours.shape == (2, 512, 4, 4)
    assert torch.equal(ours, theirs)


def test_resnet50_families_share_parameters_and_outputs():
    cam = build_model("resnet50", "cam", K, model_structure="b2").eval()
    grad = build_model("resnet50", "grad", K, model_structure="b2").eval()
    grad.load_state_dict(cam.state_dict(), strict=True)
    x = _images()
    with torch.no_grad():
        assert torch.equal(cam(x)["logits2"], grad(x)["logits2"])


CLONE_CASES = [
    ("vgg16", "cam", 64),
    ("resnet50", "cam", 64),
    ("resnet50", "grad", 64),
    ("inception_v3", "cam", 96),
    ("inception_v3", "grad", 96),
]


@pytest.mark.parametrize(("architecture", "family", "side"), CLONE_CASES)
def test_clone_makes_both_heads_agree(architecture, family, side):
    model = build_model(architecture, family, K, model_structure="b2", branch_init="clone").eval()
    assert model.branch_init == "clone"
    with torch.no_grad():
        outputs = model(_images(side=side))
    assert torch.equal(outputs["logits"], outputs["logits2"])


def test_clone_of_vgg16_grad_classifier():
    with torch.device("meta"):
        model = build_model("vgg16", "grad", K, model_structure="b2")
    model.classifier.to_empty(device="cpu")
    model.classifier_2.to_empty(device="cpu")
    with torch.no_grad():
        for index, tensor in enumerate(model.classifier.parameters()):
            tensor.fill_(index + 1)
    clone_branch(model)
    for (name, ours), (_, cloned) in zip(model.classifier.state_dict().items(),
                                         model.classifier_2.state_dict().items(), strict=True):
        assert torch.equal(ours, cloned), name


def test_random_branch_init_differs_from_head1():
    model = build_model("resnet50", "cam", K, model_structure="b2")
    assert not torch.equal(model.fc.weight, model.fc2.weight)


def test_clone_needs_b2():
    with torch.device("meta"):
        model = build_model("vgg16", "cam", K)
    with pytest.raises(ValueError, match="vanilla"):
        clone_branch(model)


def _closed_form(features, weights, labels, reduction, clamp):
    """SPEC §6.1 in NumPy: M = reduce_c(w_c F_c), with max(w, 0) for the sigmoid head."""
    chosen = weights[labels]
    if clamp:
        chosen = np.where(chosen > 0, chosen, 0)
    weighted = np.einsum("bc,bchw->bchw", chosen, features)
    return weighted.mean(axis=1) if reduction == "mean" else weighted.sum(axis=1)


@pytest.mark.parametrize(
    ("architecture", "side", "reduction"),
    [("vgg16", 64, "mean"), ("resnet50", 64, "mean"), ("inception_v3", 96, "sum")],
)
def test_cams_match_the_closed_form(architecture, side, reduction):
    model = build_model(architecture, "cam", K, model_structure="b2").eval()
    assert model.cam_reduction == reduction
    labels = torch.tensor([1, 4])
    x = _images(side=side)
    with torch.no_grad():
        outputs = model(x, labels=labels, return_cam=True)
        features = model.forward_features(x).numpy()
    weights1 = model.head_weights(1).detach().numpy()
    weights2 = model.head_weights(2).detach().numpy()
    assert (weights2[labels.numpy()] < 0).any()
    expected1 = _closed_form(features, weights1, labels.numpy(), reduction, clamp=False)
    expected2 = _closed_form(features, weights2, labels.numpy(), reduction, clamp=True)
    np.testing.assert_allclose(outputs["cams"].numpy(), expected1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs["cams2"].numpy(), expected2, rtol=1e-5, atol=1e-6)
    assert outputs["cams2"].dtype == torch.float32
    assert not outputs["cams2"].requires_grad


def test_inception_cam_head_is_conv_then_pool():
    model = build_model("inception_v3", "cam", K, model_structure="b2").eval()
    with torch.no_grad():
        features = model.forward_features(_images(side=96))
        logits = model.forward_heads(features)["logits2"]
        pooled = features.mean(dim=(2, 3))
        linear = pooled @ model.head_weights(2).T + model.SPG_A4_2.bias
    torch.testing.assert_close(logits, linear, rtol=1e-4, atol=1e-5)


def test_dropout_is_active_only_in_training():
    model = build_model("inception_v3", "cam", K)
    x = _images(batch=1, side=96)
    with torch.no_grad():
        model.eval()
        assert torch.equal(model.forward_features(x), model.forward_features(x))
        model.train()
        assert not torch.equal(model.forward_features(x), model.forward_features(x))
