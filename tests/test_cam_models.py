"""CAM methods on the real backbones of `wsol.models.registry` (random weights, small inputs).

* identities of REFERENCE_RESULTS.md on ResNet50 (GAP + one linear head): Grad-CAM == XGradCAM,
  and LayerCAM == clamped Grad-CAM;
* parity with the grad-cam package on a vanilla ResNet50;
* CAM equals the model's own `return_cam` maps (SPEC §3.6, §6.1).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from cam import compute_heatmaps, postprocess_maps, raw_maps
from tests.cam_models import freeze, make_batch, package_heatmaps
from wsol.models.registry import build_model

NUM_CLASSES = 10
SIZE = 96
ATOL = 1e-5



def _resnet(family: str, structure: str) -> nn.Module:
    torch.manual_seed(0)
    return freeze(build_model("resnet50", family, NUM_CLASSES, model_structure=structure))


@pytest.fixture(scope="module")
def batch() -> tuple[Tensor, Tensor]:
    return make_batch(2, SIZE, NUM_CLASSES, seed=3)


@pytest.fixture(scope="module")
def resnet_b2() -> nn.Module:
    return _resnet("grad", "b2")


@pytest.fixture(scope="module")
def resnet_vanilla(resnet_b2: nn.Module) -> nn.Module:
    """Vanilla ResNet50 sharing the backbone and head 1 of `resnet_b2`."""
    model = _resnet("grad", "vanilla")
    state = {k: v for k, v in resnet_b2.state_dict().items() if not k.startswith("fc2.")}
    model.load_state_dict(state)
    return model


@pytest.mark.parametrize("structure", ["vanilla", "b2"])
def test_resnet_gradcam_equals_xgradcam(
    structure: str, batch: tuple, request: pytest.FixtureRequest
) -> None:
    """GAP + linear head: ∂z_y/∂A_c = w_yc/(hw) everywhere, so α(Grad-CAM) = α(XGradCAM)."""
    model = request.getfixturevalue(f"resnet_{structure}")
    images, labels = batch
    gradcam = compute_heatmaps(model, images, labels, "gradcam")
    xgradcam = compute_heatmaps(model, images, labels, "xgradcam")
    assert gradcam.max() == 1.0
    np.testing.assert_allclose(gradcam, xgradcam, rtol=0, atol=ATOL)


@pytest.mark.parametrize("structure", ["vanilla", "b2"])
def test_resnet_layercam_equals_clamped_gradcam(
    structure: str, batch: tuple, request: pytest.FixtureRequest
) -> None:
    """Uniform gradients: Σ_c ReLU(G_c)·A_c = Σ_c max(α_c, 0)·A_c, up to the factor hw."""
    model = request.getfixturevalue(f"resnet_{structure}")
    images, labels = batch
    layercam = compute_heatmaps(model, images, labels, "layercam")
    clamped = compute_heatmaps(model, images, labels, "gradcam", clamp_negative=True)
    assert layercam.max() == 1.0
    np.testing.assert_allclose(layercam, clamped, rtol=0, atol=ATOL)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_resnet_vanilla_matches_grad_cam_package(
    method: str, resnet_vanilla: nn.Module, batch: tuple
) -> None:
    images, labels = batch
    expected = package_heatmaps(resnet_vanilla, images, labels, method)
    ours = postprocess_maps(raw_maps(resnet_vanilla, images, labels, method), method, size=SIZE)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=ATOL)


def test_resnet_target_layer_and_frozen_backbone(resnet_b2: nn.Module, batch: tuple) -> None:
    """The default target is `model.cam_layer` (layer4's last block); the model stays frozen."""
    images, labels = batch
    default = raw_maps(resnet_b2, images, labels, "gradcam")
    explicit = raw_maps(resnet_b2, images, labels, "gradcam", target_layer="layer4.2")
    assert default.shape == (2, SIZE // 16, SIZE // 16)
    torch.testing.assert_close(default, explicit)
    assert not any(p.requires_grad for p in resnet_b2.parameters())


@pytest.mark.parametrize("structure", ["vanilla", "b2"])
def test_cam_equals_model_return_cam(structure: str, batch: tuple) -> None:
    """CAM family: the method's maps equal the model's own `cams` / `cams2` (SPEC §6.1)."""
    model = _resnet("cam", structure)
    images, labels = batch
    own = model(images, labels, return_cam=True)["cams2" if structure == "b2" else "cams"]
    torch.testing.assert_close(raw_maps(model, images, labels, "cam"), own)


def test_cam_rejects_gradient_family(resnet_b2: nn.Module, batch: tuple) -> None:
    images, labels = batch
    with pytest.raises(ValueError, match="CAM-family"):
        raw_maps(resnet_b2, images, labels, "cam")
