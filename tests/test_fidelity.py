"""Tests of wsol.metrics.fidelity on hand-computed cases (CPU, tiny tensors)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from wsol.metrics.fidelity import (
    FidelityMeter,
    auc,
    average_drop,
    class_confidence,
    confidence_drop,
    confidence_increase,
    deletion_curve,
    gaussian_blur,
    importance_ranks,
    increase_in_confidence,
    insertion_curve,
    make_baseline,
    predicted_classes,
    step_counts,
)


class PixelSumModel(nn.Module):
    """Two classes with p(class 0) = s / total, s = sum(x) >= 0: logits [log s, log(total - s)]."""

    def __init__(self, total: float) -> None:
        super().__init__()
        self.total = total

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        s = x.flatten(1).sum(dim=1)
        return {"logits": torch.stack([s.log(), (self.total - s).log()], dim=1)}


class TwoHeadModel(nn.Module):
    """Input (B, 1, 1, 2) with pixels (a, b): logits = [b, 0], logits2 = [a - b, 0]."""

    def __init__(self, with_second_head: bool = True) -> None:
        super().__init__()
        self.with_second_head = with_second_head

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        a, b = x[:, 0, 0, 0], x[:, 0, 0, 1]
        outputs = {"logits": torch.stack([b, torch.zeros_like(b)], dim=1)}
        if self.with_second_head:
            outputs["logits2"] = torch.stack([a - b, torch.zeros_like(a)], dim=1)
        return outputs


class TinyConvModel(nn.Module):
    """Random two-head conv classifier for consistency tests."""

    def __init__(self, num_classes: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, num_classes)
        self.fc2 = nn.Linear(8, num_classes)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        features = self.conv(x).relu().mean(dim=(2, 3))
        return {"logits": self.fc(features), "logits2": self.fc2(features)}


def ramp_image() -> tuple[Tensor, Tensor]:
    """A (1, 1, 4, 4) image with pixel values 0..15 and the matching 'perfect' heatmap."""
    image = torch.arange(16, dtype=torch.float64).view(1, 1, 4, 4)
    return image, image[:, 0] / 15


def sigmoid(z: float) -> float:
    """Two-class softmax probability of the class with logit z against logit 0."""
    return 1.0 / (1.0 + math.exp(-z))


def test_drop_and_increase_on_hand_values() -> None:
    y = torch.tensor([0.8, 0.5, 0.2, 0.4])
    o = torch.tensor([0.4, 0.6, 0.2, 0.0])
    torch.testing.assert_close(confidence_drop(y, o), torch.tensor([0.5, 0.0, 0.0, 1.0]))
    torch.testing.assert_close(confidence_increase(y, o), torch.tensor([0.0, 1.0, 0.0, 0.0]))
    assert average_drop(y, o) == pytest.approx(100 * 1.5 / 4, abs=1e-4)
    assert increase_in_confidence(y, o) == pytest.approx(25.0)


def test_drop_epsilon_keeps_zero_confidence_finite() -> None:
    assert float(confidence_drop(torch.tensor([0.0]), torch.tensor([0.0]))) == 0.0
    assert average_drop(torch.tensor([1e-7]), torch.tensor([0.0])) == pytest.approx(50.0)


def test_auc_of_known_curves() -> None:
    torch.testing.assert_close(auc(torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0])),
                               torch.tensor(0.375, dtype=torch.float64))
    torch.testing.assert_close(auc(torch.tensor([[0.0, 1.0], [1.0, 1.0]])),
                               torch.tensor([0.5, 1.0], dtype=torch.float64))
    fractions = torch.tensor([0.0, 0.1, 1.0])
    torch.testing.assert_close(auc(torch.tensor([1.0, 1.0, 0.0]), fractions),
                               torch.tensor(0.55, dtype=torch.float64))
    with pytest.raises(ValueError, match="non-decreasing"):
        auc(torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0.0, 0.6, 0.5]))


def test_step_counts_and_ranks() -> None:
    assert step_counts(16, 4) == [0, 4, 8, 12, 16]
    assert step_counts(10, 4) == [0, 2, 5, 7, 10]
    with pytest.raises(ValueError, match="num_steps"):
        step_counts(16, 17)
    saliency = torch.tensor([[[0.2, 0.9], [0.2, 0.5]]])
    assert importance_ranks(saliency).tolist() == [[[2, 0], [3, 1]]]


def test_deletion_curve_by_hand() -> None:
    image, heatmap = ramp_image()
    model = PixelSumModel(total=120.0)

    def score(x: Tensor) -> Tensor:
        return class_confidence(model(x), [0], "softmax_head")

    fractions, curve = deletion_curve(score, image, heatmap, torch.zeros_like(image), num_steps=4)
    # Removing the k largest of 0..15 leaves (16 - k)(15 - k) / 2 of the total 120.
    expected = torch.tensor([[240, 132, 56, 12, 0]], dtype=torch.float32) / 240
    grid = torch.tensor([0, 0.25, 0.5, 0.75, 1], dtype=torch.float64)
    torch.testing.assert_close(fractions, grid)
    torch.testing.assert_close(curve, expected)
    assert float(auc(curve, fractions)) == pytest.approx(1 / 3)


def test_insertion_curve_by_hand() -> None:
    image, heatmap = ramp_image()
    model = PixelSumModel(total=120.0)

    def score(x: Tensor) -> Tensor:
        return class_confidence(model(x), [0], "softmax_head")

    fractions, curve = insertion_curve(score, image, heatmap, torch.zeros_like(image), num_steps=4)
    # Inserting the k largest of 0..15 into a zero image: 0, 54, 92, 114, 120 of 120.
    expected = torch.tensor([[0, 54, 92, 114, 120]], dtype=torch.float32) / 120
    torch.testing.assert_close(curve, expected)
    assert float(auc(curve, fractions)) == pytest.approx(2 / 3)


def test_curves_reuse_clean_scores_without_changing_them() -> None:
    image, heatmap = ramp_image()
    model = PixelSumModel(total=120.0)
    calls = []

    def score(x: Tensor) -> Tensor:
        calls.append(x.shape[0])
        return class_confidence(model(x), [0], "softmax_head")

    clean = score(image)
    _, reference = deletion_curve(score, image, heatmap, torch.zeros_like(image), num_steps=4)
    calls.clear()
    _, reused = deletion_curve(score, image, heatmap, torch.zeros_like(image), num_steps=4,
                               clean_scores=clean)
    assert len(calls) == 4
    torch.testing.assert_close(reused, reference)


def test_gaussian_blur() -> None:
    constant = torch.full((2, 3, 5, 6), 0.7)
    torch.testing.assert_close(gaussian_blur(constant), constant)
    impulse = torch.zeros(1, 1, 15, 15)
    impulse[0, 0, 7, 7] = 1.0
    blurred = gaussian_blur(impulse, kernel_size=3, sigma=1.0)
    weights = torch.tensor([math.exp(-0.5), 1.0, math.exp(-0.5)])
    weights = weights / weights.sum()
    torch.testing.assert_close(blurred[0, 0, 6:9, 6:9], torch.outer(weights, weights))
    assert float(blurred.sum()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="odd"):
        gaussian_blur(constant, kernel_size=4)


def test_meter_on_linear_model_by_hand() -> None:
    image, heatmap = ramp_image()
    meter = FidelityMeter("softmax_head", num_steps=4, insertion_baseline="zeros")
    meter.update(PixelSumModel(total=120.0).eval(), image, heatmap.numpy(), [0])
    result = meter.compute()
    # Perturbed image x * x / 15 sums to sum(j^2) / 15 = 1240 / 15 of 120.
    o = 1240 / 15 / 120
    assert result["num_images"] == 1
    assert result["avg_drop"] == pytest.approx(100 * (1 - o), rel=1e-5)
    assert result["increase_in_confidence"] == 0.0
    assert result["deletion_auc"] == pytest.approx(100 / 3, rel=1e-5)
    assert result["insertion_auc"] == pytest.approx(200 / 3, rel=1e-5)


def test_protocols_differ_on_two_head_model() -> None:
    image = torch.tensor([[[[2.0, 1.0]]]])
    heatmap = torch.tensor([[[1.0, 0.0]]])
    model = TwoHeadModel().eval()
    predicted = predicted_classes(model(image))
    assert predicted.tolist() == [0]
    # Clean: logits [1, 0], logits2 [1, 0]. Perturbed (2, 0): logits [0, 0], logits2 [2, 0].
    authors = FidelityMeter("authors", ["avg_drop", "increase_in_confidence"])
    authors.update(model, image, heatmap, predicted)
    assert authors.compute()["avg_drop"] == 0.0
    assert authors.compute()["increase_in_confidence"] == 100.0
    softmax_head = FidelityMeter("softmax_head", ["avg_drop", "increase_in_confidence"])
    softmax_head.update(model, image, heatmap, predicted)
    y, o = sigmoid(1.0), 0.5
    assert softmax_head.compute()["avg_drop"] == pytest.approx(100 * (y - o) / y, rel=1e-5)
    assert softmax_head.compute()["increase_in_confidence"] == 0.0


def test_protocols_agree_without_second_head() -> None:
    image = torch.tensor([[[[2.0, 1.0]]]])
    heatmap = torch.tensor([[[1.0, 0.0]]])
    model = TwoHeadModel(with_second_head=False).eval()
    results = []
    for protocol in ("authors", "softmax_head"):
        meter = FidelityMeter(protocol, num_steps=2)
        meter.update(model, image, heatmap, [0])
        results.append(meter.compute())
    assert results[0] == results[1]


def test_merge_equals_one_meter_over_both_batches() -> None:
    torch.manual_seed(0)
    model = TinyConvModel().eval()
    images = torch.randn(5, 3, 8, 8)
    heatmaps = torch.rand(5, 8, 8)
    targets = predicted_classes(model(images))
    whole = FidelityMeter("authors", num_steps=8)
    whole.update(model, images, heatmaps, targets)
    first, second = FidelityMeter("authors", num_steps=8), FidelityMeter("authors", num_steps=8)
    first.update(model, images[:2], heatmaps[:2], targets[:2])
    second.update(model, images[2:], heatmaps[2:], targets[2:])
    first.merge(second)
    assert first.num_images == whole.num_images == 5
    for name, value in whole.compute().items():
        assert first.compute()[name] == pytest.approx(value, rel=1e-5, abs=1e-6)
    restored = FidelityMeter("authors", num_steps=8)
    restored.load_state_dict(first.state_dict())
    assert restored.compute() == first.compute()
    with pytest.raises(ValueError, match="different settings"):
        first.merge(FidelityMeter("softmax_head", num_steps=8))


def test_precomputed_outputs_give_same_result() -> None:
    torch.manual_seed(1)
    model = TinyConvModel().eval()
    images = torch.randn(3, 3, 6, 6)
    heatmaps = np.random.default_rng(0).random((3, 6, 6), dtype=np.float32)
    outputs = model(images)
    targets = predicted_classes(outputs)
    plain, reused = FidelityMeter(num_steps=6), FidelityMeter(num_steps=6)
    plain.update(model, images, heatmaps, targets)
    reused.update(model, images, heatmaps, targets, outputs=outputs)
    assert plain.compute() == pytest.approx(reused.compute())


def test_meter_selects_metrics_and_validates_inputs() -> None:
    model = TinyConvModel().eval()
    images = torch.randn(2, 3, 6, 6)
    meter = FidelityMeter(metrics=["deletion_auc"], num_steps=3)
    meter.update(model, images, torch.rand(2, 6, 6), [0, 1])
    assert set(meter.compute()) == {"num_images", "deletion_auc"}
    with pytest.raises(ValueError, match="shape"):
        meter.update(model, images, torch.rand(2, 5, 6), [0, 1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        meter.update(model, images, torch.full((2, 6, 6), 1.5), [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        meter.update(model, images, torch.full((2, 6, 6), float("nan")), [0, 1])
    with pytest.raises(ValueError, match="target classes"):
        meter.update(model, images, torch.rand(2, 6, 6), [0, 7])
    with pytest.raises(RuntimeError, match="eval mode"):
        meter.update(model.train(), images, torch.rand(2, 6, 6), [0, 1])
    with pytest.raises(ValueError, match="unknown protocol"):
        FidelityMeter("sigmoid")
    with pytest.raises(ValueError, match="unknown metrics"):
        FidelityMeter(metrics=["road"])
    with pytest.raises(ValueError, match="unknown baseline"):
        make_baseline(images, "noise")
    with pytest.raises(RuntimeError, match="before any image"):
        FidelityMeter().compute()
