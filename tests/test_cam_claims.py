"""The paper's two claims about softmax CAMs, on the registered `tiny_cnn` CAM model (seeded).

Softmax is invariant to adding the same vector v to every class row of the head's weights
(z_k + v·f for every k), so the cross-entropy loss is flat along that direction and nothing in
training fixes it. The CAM of class k, M_k = mean_c (w_kc + v_c) F_c, is not invariant:

* additive shift (v = +c·1): probabilities unchanged, the map drifts to the class-agnostic
  feature energy mean_c F_c;
* sign collapse (v = −c·1, every weight negative): probabilities unchanged, the CAM is ≤ 0
  everywhere and its normalised map is the inverted energy; Grad-CAM's ReLU then leaves nothing.

The sigmoid head has no such direction: each class is scored on its own, so the same shift
changes its probabilities and its (class-balanced BCE) loss; the maps of a trained sigmoid head
are pinned by its predictions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from cam import compute_heatmaps, postprocess_maps, raw_maps
from tests.cam_models import freeze, make_batch
from wsol.models.registry import build_model

NUM_CLASSES = 10
SHIFT = 0.05  # five times the N(0, 0.01²) init scale of the heads



def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@contextmanager
def shifted(*heads: nn.Linear, shift: float) -> Iterator[None]:
    """Add `shift` to every weight of the heads (the same vector for every class row), then
    restore the exact original weights."""
    originals = [head.weight.detach().clone() for head in heads]
    with torch.no_grad():
        for head in heads:
            head.weight += shift
    try:
        yield
    finally:
        with torch.no_grad():
            for head, original in zip(heads, originals, strict=True):
                head.weight.copy_(original)


@pytest.fixture(scope="module")
def b2_model() -> nn.Module:
    torch.manual_seed(0)
    return freeze(build_model("tiny_cnn", "cam", NUM_CLASSES, model_structure="b2"))


@pytest.fixture(scope="module")
def softmax_model(b2_model: nn.Module) -> nn.Module:
    """A vanilla model with the backbone and head 1 of `b2_model`: explains the softmax head."""
    vanilla = freeze(build_model("tiny_cnn", "cam", NUM_CLASSES, model_structure="vanilla"))
    state = {k: v for k, v in b2_model.state_dict().items() if not k.startswith("fc2.")}
    vanilla.load_state_dict(state)
    return vanilla


@pytest.fixture(scope="module")
def batch() -> tuple[Tensor, Tensor]:
    return make_batch(2, 96, NUM_CLASSES, seed=5)


@pytest.fixture(scope="module")
def energy(b2_model: nn.Module, batch: tuple) -> np.ndarray:
    """Class-agnostic map: the channel mean of the feature map, post-processed like a CAM."""
    with torch.no_grad():
        return postprocess_maps(b2_model.forward_features(batch[0]).mean(1), "cam")


def _softmax(model: nn.Module, images: Tensor) -> Tensor:
    with torch.no_grad():
        return model(images)["logits"].softmax(dim=1)


def test_additive_shift_keeps_softmax_but_changes_cam(
    softmax_model: nn.Module, batch: tuple, energy: np.ndarray
) -> None:
    """Asserted: softmax probabilities equal to 1e-6; the normalised CAM moves by > 0.5 somewhere;
    after the shift it correlates > 0.99 with the class-agnostic energy map, before it did not."""
    images, labels = batch
    probs = _softmax(softmax_model, images)
    cam_before = compute_heatmaps(softmax_model, images, labels, "cam")
    with shifted(softmax_model.fc, shift=SHIFT):
        torch.testing.assert_close(_softmax(softmax_model, images), probs, rtol=0, atol=1e-6)
        cam_after = compute_heatmaps(softmax_model, images, labels, "cam")
    assert np.abs(cam_after - cam_before).max() > 0.5
    assert _corr(cam_after, energy) > 0.99
    assert _corr(cam_before, energy) < 0.9


def test_sign_collapse_inverts_cam_and_empties_gradcam(
    softmax_model: nn.Module, batch: tuple, energy: np.ndarray
) -> None:
    """Asserted, after subtracting 2·SHIFT from every head-1 weight (all weights now < 0):
    softmax probabilities equal to 1e-6; the raw CAM is ≤ 0 everywhere (F ≥ 0 after ReLU) and
    its normalised map correlates < −0.99 with the energy map (inverted); Grad-CAM, which
    applies a ReLU, returns an all-zero map where it had a non-zero one before."""
    images, labels = batch
    probs = _softmax(softmax_model, images)
    assert compute_heatmaps(softmax_model, images, labels, "gradcam").max() == 1.0
    with shifted(softmax_model.fc, shift=-2 * SHIFT):
        assert bool((softmax_model.fc.weight < 0).all())
        torch.testing.assert_close(_softmax(softmax_model, images), probs, rtol=0, atol=1e-6)
        assert float(raw_maps(softmax_model, images, labels, "cam").max()) <= 0.0
        assert _corr(compute_heatmaps(softmax_model, images, labels, "cam"), energy) < -0.99
        assert not compute_heatmaps(softmax_model, images, labels, "gradcam").any()


@pytest.mark.parametrize("shift", [SHIFT, -2 * SHIFT])
def test_sigmoid_branch_is_not_shift_invariant(
    shift: float, b2_model: nn.Module, batch: tuple
) -> None:
    """Asserted for either shift: on head 2 the sigmoid probabilities move by > 0.1 and the
    class-balanced BCE (SPEC §4, pos_weight K−1) changes by > 0.1, whereas on head 1 the
    cross-entropy changes by < 1e-5 — the softmax loss is flat along the shift, the sigmoid
    loss is not, so the sigmoid maps are pinned to what the head predicts."""
    images, labels = batch
    targets = F.one_hot(labels, NUM_CLASSES).float()
    pos_weight = torch.tensor(float(NUM_CLASSES - 1))

    def losses() -> tuple[Tensor, float, float]:
        with torch.no_grad():
            out = b2_model(images)
        bce = F.binary_cross_entropy_with_logits(out["logits2"], targets, pos_weight=pos_weight)
        return out["logits2"].sigmoid(), float(bce), float(F.cross_entropy(out["logits"], labels))

    probs, bce, ce = losses()
    with shifted(b2_model.fc, b2_model.fc2, shift=shift):
        probs_shifted, bce_shifted, ce_shifted = losses()
    assert float((probs_shifted - probs).abs().max()) > 0.1
    assert abs(bce_shifted - bce) > 0.1
    assert abs(ce_shifted - ce) < 1e-5


def test_clamped_sigmoid_cam_ignores_negative_weights(b2_model: nn.Module, batch: tuple) -> None:
    """Asserted: with the default positive clamp (SPEC A2), lowering the negative weights of
    head 2 further leaves the b2 CAM unchanged (a sign collapse cannot enter through them)."""
    images, labels = batch
    before = raw_maps(b2_model, images, labels, "cam")
    original = b2_model.fc2.weight.detach().clone()
    try:
        with torch.no_grad():
            b2_model.fc2.weight.copy_(torch.where(original > 0, original, original - 1.0))
        torch.testing.assert_close(raw_maps(b2_model, images, labels, "cam"), before)
    finally:
        with torch.no_grad():
            b2_model.fc2.weight.copy_(original)
