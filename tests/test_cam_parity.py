"""Parity of the CAM methods with independent references (SPEC §6.1, §6.2).

* vanilla, gradient methods: the `grad-cam` package (pytorch_grad_cam 1.5.7, the library the
  authors built on) on the same model, batch, layer and targets;
* b2 (clamped) and the clamp switch: a NumPy implementation written from the SPEC §6.2 formulas;
* CAM: the closed form of SPEC §6.1 in NumPy, and the model's own `return_cam` maps.

`pytorch_grad_cam` is imported unconditionally (in `tests.cam_models`): without it these tests
fail at collection instead of being skipped.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import Tensor, nn

from cam import compute_heatmaps, postprocess_maps, raw_maps
from tests.cam_models import (
    TinyCAMNet,
    TinyGradNet,
    freeze,
    make_batch,
    numpy_normalize,
    package_heatmaps,
)

GRADIENT_METHODS = ["gradcam", "gradcam++", "xgradcam", "layercam"]
ATOL = 1e-5



# --- NumPy oracle, straight from SPEC §6.2 / §6.4 ---


def numpy_gradient_map(method: str, acts: np.ndarray, grads: np.ndarray, clamp: bool) -> np.ndarray:
    if method == "layercam":
        return (np.maximum(grads, 0) * acts).sum(axis=1)
    sums = acts.sum(axis=(2, 3))
    if method == "gradcam":
        alpha = grads.mean(axis=(2, 3))
    elif method == "gradcam++":
        g2, g3 = grads**2, grads**3
        a = g2 / (2 * g2 + sums[:, :, None, None] * g3 + 1e-6)
        a = np.where(grads != 0, a, 0)
        alpha = (np.maximum(grads, 0) * a).sum(axis=(2, 3))
    else:
        alpha = (grads * acts).sum(axis=(2, 3)) / (sums + 1e-7)
    if clamp:
        alpha = np.maximum(alpha, 0)
    return (alpha[:, :, None, None] * acts).sum(axis=1)


def numpy_gradient_chain(scoremap: np.ndarray, size: int) -> np.ndarray:
    def minmax(m: np.ndarray) -> np.ndarray:
        m = m - m.min()
        return m / (m.max() + np.float32(1e-7))

    m = minmax(np.maximum(scoremap, 0))
    m = cv2.resize(m, (size, size))
    m = minmax(np.maximum(m, 0))
    m = cv2.resize(m, (size, size), interpolation=cv2.INTER_CUBIC)
    return numpy_normalize(m)


def numpy_oracle(
    model: nn.Module, images: Tensor, labels: Tensor, method: str, key: str, clamp: bool, size: int
) -> np.ndarray:
    acts = model.forward_features(images).detach().requires_grad_(True)
    score = model.forward_heads(acts)[key].gather(1, labels[:, None]).sum()
    (grads,) = torch.autograd.grad(score, acts)
    raw = numpy_gradient_map(method, acts.detach().numpy(), grads.numpy(), clamp)
    return np.stack([numpy_gradient_chain(m.astype(np.float32), size) for m in raw])


# --- tests ---


@pytest.fixture(scope="module")
def batch() -> tuple[Tensor, Tensor]:
    return make_batch(3, 64, num_classes=6, seed=1)


@pytest.mark.parametrize("method", GRADIENT_METHODS)
@pytest.mark.parametrize("model_cls", [TinyGradNet, TinyCAMNet])
def test_vanilla_matches_grad_cam_package(method: str, model_cls: type, batch: tuple) -> None:
    """Vanilla: same maps as pytorch_grad_cam (ReLU, min–max, bilinear, min–max), after §6.4."""
    images, labels = batch
    model = freeze(model_cls(model_structure="vanilla"))
    expected = package_heatmaps(model, images, labels, method)
    ours = postprocess_maps(raw_maps(model, images, labels, method), method, size=64)
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(ours, expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_vanilla_matches_package_at_224(method: str) -> None:
    """End to end through `compute_heatmaps` at the evaluation size, both post-processing forms."""
    images, labels = make_batch(2, 224, num_classes=6, seed=2)
    model = freeze(TinyGradNet(model_structure="vanilla"))
    expected = package_heatmaps(model, images, labels, method)
    for backend in ("opencv", "torch"):
        ours = np.asarray(compute_heatmaps(model, images, labels, method, postprocess=backend))
        assert ours.shape == (2, 224, 224)
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_b2_clamped_matches_numpy_oracle(method: str, batch: tuple) -> None:
    """b2: explains raw `logits2` of the GT class with α clamped at 0 (LayerCAM: no clamp)."""
    images, labels = batch
    model = freeze(TinyGradNet(model_structure="b2"))
    expected = numpy_oracle(model, images, labels, method, "logits2", clamp=True, size=64)
    ours = postprocess_maps(raw_maps(model, images, labels, method), method, size=64)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=ATOL)


def test_b2_clamp_changes_gradcam_maps(batch: tuple) -> None:
    """The clamp is not a no-op on this model: some α are negative, so the maps differ."""
    images, labels = batch
    model = freeze(TinyGradNet(model_structure="b2"))
    clamped = postprocess_maps(raw_maps(model, images, labels, "gradcam"), "gradcam", size=64)
    plain = postprocess_maps(
        raw_maps(model, images, labels, "gradcam", clamp_negative=False), "gradcam", size=64
    )
    assert np.abs(clamped - plain).max() > 0.05


@pytest.mark.parametrize("method", ["gradcam", "xgradcam"])
def test_clamp_switch(method: str, batch: tuple) -> None:
    """SPEC A2 ablation switch: b2 unclamped equals the package on `logits2`; vanilla clamped
    equals the oracle with the clamp."""
    images, labels = batch
    b2 = freeze(TinyGradNet(model_structure="b2"))
    expected = package_heatmaps(b2, images, labels, method, key="logits2")
    ours = postprocess_maps(
        raw_maps(b2, images, labels, method, clamp_negative=False), method, size=64
    )
    np.testing.assert_allclose(ours, expected, rtol=0, atol=ATOL)
    vanilla = freeze(TinyGradNet(model_structure="vanilla"))
    expected = numpy_oracle(vanilla, images, labels, method, "logits", clamp=True, size=64)
    ours = postprocess_maps(
        raw_maps(vanilla, images, labels, method, clamp_negative=True), method, size=64
    )
    np.testing.assert_allclose(ours, expected, rtol=0, atol=ATOL)


def test_layercam_ignores_the_clamp(batch: tuple) -> None:
    """LayerCAM's per-pixel weights are already rectified; the clamp switch has no effect."""
    images, labels = batch
    model = freeze(TinyGradNet(model_structure="b2"))
    default = raw_maps(model, images, labels, "layercam")
    for clamp in (True, False):
        torch.testing.assert_close(
            raw_maps(model, images, labels, "layercam", clamp_negative=clamp), default
        )


@pytest.mark.parametrize("structure", ["vanilla", "b2"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cam_matches_closed_form(structure: str, reduction: str, batch: tuple) -> None:
    """SPEC §6.1: M = mean_c (or sum_c) w_c F_c with w2 clamped at 0 for b2; bicubic; §6.4."""
    images, labels = batch
    model = freeze(TinyCAMNet(model_structure=structure, cam_reduction=reduction))
    feats = model.forward_features(images).numpy()
    weights = model.head_weights(2 if structure == "b2" else 1).numpy()[labels.numpy()]
    if structure == "b2":
        weights = np.where(weights > 0, weights, 0)
    weighted = weights[:, :, None, None] * feats
    expected_raw = weighted.mean(axis=1) if reduction == "mean" else weighted.sum(axis=1)
    ours_raw = raw_maps(model, images, labels, "cam")
    np.testing.assert_allclose(ours_raw.numpy(), expected_raw, rtol=1e-5, atol=1e-7)
    own = model(images, labels, return_cam=True)["cams2" if structure == "b2" else "cams"]
    torch.testing.assert_close(ours_raw, own, rtol=1e-6, atol=1e-8)
    expected = np.stack(
        [
            numpy_normalize(
                cv2.resize(m.astype(np.float32), (224, 224), interpolation=cv2.INTER_CUBIC)
            )
            for m in expected_raw
        ]
    )
    for backend in ("opencv", "torch"):
        ours = np.asarray(compute_heatmaps(model, images, labels, "cam", postprocess=backend))
        np.testing.assert_allclose(ours, expected, rtol=0, atol=ATOL)


def test_cam_clamp_switch(batch: tuple) -> None:
    """CAM on b2 without the clamp uses the signed fc2 row (ablation of SPEC A2)."""
    images, labels = batch
    model = freeze(TinyCAMNet(model_structure="b2"))
    feats = model.forward_features(images)
    expected = (model.fc2.weight[labels][:, :, None, None] * feats).mean(1)
    torch.testing.assert_close(
        raw_maps(model, images, labels, "cam", clamp_negative=False), expected
    )
    assert not torch.allclose(raw_maps(model, images, labels, "cam"), expected)


@pytest.mark.parametrize("method", ["cam", *GRADIENT_METHODS])
@pytest.mark.parametrize("structure", ["vanilla", "b2"])
def test_batch_of_one_equals_batch_of_n(method: str, structure: str, batch: tuple) -> None:
    images, labels = batch
    model = freeze(TinyCAMNet(model_structure=structure))
    together = compute_heatmaps(model, images, labels, method)
    alone = np.concatenate(
        [
            compute_heatmaps(model, images[i : i + 1], labels[i : i + 1], method)
            for i in range(len(images))
        ]
    )
    np.testing.assert_allclose(together, alone, rtol=0, atol=ATOL)


@pytest.mark.parametrize("method", ["cam", "gradcam"])
def test_no_labels_explains_softmax_prediction(method: str, batch: tuple) -> None:
    images, _ = batch
    model = freeze(TinyCAMNet(model_structure="b2"))
    predicted = model(images)["logits"].argmax(1)
    torch.testing.assert_close(
        raw_maps(model, images, None, method), raw_maps(model, images, predicted, method)
    )
