"""Hook lifecycle and side effects of the CAM methods (STYLE rec. 11, SPEC §6).

A method adds exactly one forward hook while its `with` block is open and none afterwards (also
when the block raises); it never writes parameter `.grad`, never changes BatchNorm buffers or
`requires_grad`, and rejects misuse with explicit errors.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from cam import CAM_METHODS, GradientCAM, compute_heatmaps, raw_maps
from tests.cam_models import TinyCAMNet, TinyGradNet, freeze, make_batch

GRADIENT_METHODS = ["gradcam", "gradcam++", "xgradcam", "layercam"]



@pytest.fixture
def batch() -> tuple[Tensor, Tensor]:
    return make_batch(2, 48, num_classes=6, seed=7)


def _hook_count(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks)
        for m in model.modules()
    )


def _buffers(model: nn.Module) -> dict[str, Tensor]:
    return {name: buf.clone() for name, buf in model.named_buffers()}


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_one_hook_inside_none_after(method: str, batch: tuple) -> None:
    images, labels = batch
    model = freeze(TinyGradNet(model_structure="b2"))
    explainer = CAM_METHODS[method](model)
    assert _hook_count(model) == 0
    with explainer as active:
        assert _hook_count(model) == 1
        active(images, labels)
        active(images, labels)
        assert _hook_count(model) == 1
    assert _hook_count(model) == 0


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_hooks_removed_when_the_block_raises(method: str, batch: tuple) -> None:
    images, _ = batch
    model = freeze(TinyGradNet())
    with pytest.raises(ZeroDivisionError), CAM_METHODS[method](model):
        _ = 1 / 0
    assert _hook_count(model) == 0
    with pytest.raises(ValueError, match="labels"):
        raw_maps(model, images, torch.tensor([0, 1, 2]), method)
    assert _hook_count(model) == 0


@pytest.mark.parametrize("method", ["cam", *GRADIENT_METHODS])
@pytest.mark.parametrize("frozen", [True, False])
def test_no_side_effects_on_parameters_and_batchnorm(
    method: str, frozen: bool, batch: tuple
) -> None:
    """p.grad stays None (or its earlier value), requires_grad and BN buffers are unchanged,
    and the model stays in eval mode."""
    images, labels = batch
    model = TinyCAMNet(model_structure="b2").eval()
    if frozen:
        freeze(model)
    else:
        model.fc.weight.grad = torch.full_like(model.fc.weight, 3.0)
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    buffers = _buffers(model)
    weights = copy.deepcopy(model.state_dict())
    compute_heatmaps(model, images, labels, method)
    for name, parameter in model.named_parameters():
        assert parameter.requires_grad == flags[name]
        if name == "fc.weight" and not frozen:
            assert bool((parameter.grad == 3.0).all())
        else:
            assert parameter.grad is None, name
    for name, buffer in model.named_buffers():
        torch.testing.assert_close(buffer, buffers[name], rtol=0, atol=0)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, weights[name], rtol=0, atol=0)
    assert not model.training
    assert _hook_count(model) == 0


def test_results_are_detached(batch: tuple) -> None:
    images, labels = batch
    model = TinyGradNet(model_structure="b2").eval()
    with CAM_METHODS["gradcam"](model) as explainer:
        result = explainer.explain(images, labels)
    assert not result.maps.requires_grad
    assert all(not value.requires_grad for value in result.outputs.values())
    torch.testing.assert_close(result.labels, labels)
    assert result.maps.dtype == torch.float32
    assert result.maps.shape == (2, 12, 12)


def test_misuse_raises(batch: tuple) -> None:
    images, labels = batch
    model = freeze(TinyGradNet())
    explainer = CAM_METHODS["gradcam"](model)
    with pytest.raises(RuntimeError, match="context manager"):
        explainer(images, labels)
    with explainer, pytest.raises(RuntimeError, match="already active"):
        explainer.__enter__()
    assert _hook_count(model) == 0
    model.train()
    with pytest.raises(RuntimeError, match="eval mode"):
        raw_maps(model, images, labels, "gradcam")
    model.eval()
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 6\)"):
        raw_maps(model, images, torch.tensor([0, 6]), "gradcam")
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        raw_maps(model, images[0], labels, "gradcam")
    with pytest.raises(ValueError, match="unknown CAM method"):
        raw_maps(model, images, labels, "scorecam")
    with pytest.raises(AttributeError):
        raw_maps(model, images, labels, "gradcam", target_layer="features.99")
    with pytest.raises(ValueError, match="target layer"):
        raw_maps(freeze(TinyCAMNet()), images, labels, "cam", target_layer="features")
    assert _hook_count(model) == 0


def test_inference_mode_is_rejected(batch: tuple) -> None:
    images, labels = batch
    model = freeze(TinyGradNet())
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        raw_maps(model, images, labels, "gradcam")
    assert _hook_count(model) == 0


def test_int_label_is_broadcast(batch: tuple) -> None:
    images, _ = batch
    model = freeze(TinyGradNet())
    expected = raw_maps(model, images, [4, 4], "gradcam")
    for label in (4, np.int64(4), torch.tensor(4)):
        torch.testing.assert_close(raw_maps(model, images, label, "gradcam"), expected)


class _TwiceNet(TinyGradNet):
    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x) + 0 * self.features(x)


def test_layer_must_run_once_and_not_be_overwritten(batch: tuple) -> None:
    """A layer that runs twice, or whose output a later in-place op modifies, is rejected."""
    images, labels = batch
    with pytest.raises(RuntimeError, match="ran 2 times"):
        raw_maps(freeze(_TwiceNet()), images, labels, "gradcam")
    model = freeze(TinyGradNet())
    with pytest.raises(RuntimeError, match="modified in place"):
        raw_maps(model, images, labels, "gradcam", target_layer="features.1")
    assert _hook_count(model) == 0


def test_in_place_relu_target_layer_works(batch: tuple) -> None:
    """The grad-family VGG16 target is an in-place ReLU (SPEC §3.5); its output is usable."""
    images, labels = batch
    model = freeze(TinyGradNet())
    assert model.get_submodule(model.cam_layer).inplace
    assert isinstance(model.get_submodule(model.cam_layer), nn.ReLU)
    assert raw_maps(model, images, labels, "gradcam").abs().max() > 0


def test_gradient_methods_share_the_base() -> None:
    assert all(issubclass(CAM_METHODS[name], GradientCAM) for name in GRADIENT_METHODS)


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["cam", *GRADIENT_METHODS])
def test_cpu_and_cuda_agree(method: str, batch: tuple) -> None:
    """Same heatmaps on the CPU (OpenCV chain) and on CUDA (torch chain).

    GPU tests are deselected by default; `pytest -m gpu` runs them and fails without CUDA.
    """
    images, labels = batch
    model = freeze(TinyCAMNet(model_structure="b2"))
    on_cpu = compute_heatmaps(model, images, labels, method)
    on_cuda = compute_heatmaps(
        copy.deepcopy(model).cuda(), images.cuda(), labels.cuda(), method, postprocess="torch"
    )
    np.testing.assert_allclose(on_cuda.cpu().numpy(), on_cpu, rtol=0, atol=1e-4)
