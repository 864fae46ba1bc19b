"""Tiny models honouring the `wsol.models.registry` contract, and the references the CAM tests use.

`TinyCAMNet` is CAM-family shaped (features → GAP → linear head(s)); `TinyGradNet` has the
gradient-family shape of VGG16 (in-place ReLU as the target layer, 2×2 pooling, an MLP head), so
its gradients are not spatially uniform.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM, XGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import Tensor, nn

__all__ = [
    "LogitsOf",
    "TinyCAMNet",
    "TinyGradNet",
    "freeze",
    "make_batch",
    "numpy_normalize",
    "package_heatmaps",
]

PACKAGE_CLASSES = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
}



def _features(widths: tuple[int, ...], last_pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = 3
    for index, width in enumerate(widths):
        last = index == len(widths) - 1
        layers += [
            nn.Conv2d(in_ch, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        if not last or last_pool:
            layers.append(nn.MaxPool2d(2))
        in_ch = width
    return nn.Sequential(*layers)


def _randomise_batchnorm(module: nn.Module, generator: torch.Generator) -> None:
    for layer in module.modules():
        if isinstance(layer, nn.BatchNorm2d):
            n = layer.num_features
            layer.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
            layer.running_var.copy_(0.5 + torch.rand(n, generator=generator))
            layer.weight.data.copy_(1 + 0.1 * torch.randn(n, generator=generator))
            layer.bias.data.copy_(0.1 * torch.randn(n, generator=generator))


class TinyCAMNet(nn.Module):
    """Conv-BN-ReLU stack (3 poolings) → GAP → `fc` (and `fc2` for b2)."""

    architecture = "tiny"
    family = "cam"

    def __init__(
        self,
        num_classes: int = 6,
        model_structure: str = "vanilla",
        cam_reduction: str = "mean",
        seed: int = 0,
    ) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.num_classes = num_classes
        self.model_structure = model_structure
        self.cam_reduction = cam_reduction
        self.cam_layer = "features"
        self.features = _features((8, 16, 32), last_pool=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, num_classes)
        if model_structure == "b2":
            self.fc2 = nn.Linear(32, num_classes)
        _randomise_batchnorm(self, generator)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward_heads(self, features: Tensor) -> dict[str, Tensor]:
        pooled = self.avgpool(features).flatten(1)
        out = {"logits": self.fc(pooled)}
        if self.model_structure == "b2":
            out["logits2"] = self.fc2(pooled)
        return out

    def head_weights(self, branch: int) -> Tensor:
        return (self.fc2 if branch == 2 else self.fc).weight

    def forward(self, x: Tensor, labels: Tensor | None = None, return_cam: bool = False) -> dict:
        features = self.forward_features(x)
        out = self.forward_heads(features)
        if return_cam:
            labels = out["logits"].argmax(1) if labels is None else labels
            reduce = (lambda t: t.mean(1)) if self.cam_reduction == "mean" else (lambda t: t.sum(1))
            out["labels"] = labels
            out["cams"] = reduce(self.fc.weight[labels][:, :, None, None] * features)
            if self.model_structure == "b2":
                weights = self.fc2.weight[labels].clamp_min(0)
                out["cams2"] = reduce(weights[:, :, None, None] * features)
        return out


class TinyGradNet(nn.Module):
    """Conv-BN-ReLU stack ending in an in-place ReLU → 2×2 average pool → MLP `classifier`
    (and `classifier_2` for b2), like the gradient-family VGG16."""

    architecture = "tiny"
    family = "grad"

    def __init__(
        self, num_classes: int = 6, model_structure: str = "vanilla", seed: int = 0
    ) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.num_classes = num_classes
        self.model_structure = model_structure
        self.features = _features((8, 16, 32), last_pool=False)
        self.cam_layer = f"features.{len(self.features) - 1}"
        self.avgpool = nn.AdaptiveAvgPool2d(2)
        self.classifier = self._head(num_classes)
        if model_structure == "b2":
            self.classifier_2 = self._head(num_classes)
        _randomise_batchnorm(self, generator)

    @staticmethod
    def _head(num_classes: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Linear(32 * 4, 24), nn.ReLU(inplace=True), nn.Linear(24, num_classes)
        )

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward_heads(self, features: Tensor) -> dict[str, Tensor]:
        pooled = self.avgpool(features).flatten(1)
        out = {"logits": self.classifier(pooled)}
        if self.model_structure == "b2":
            out["logits2"] = self.classifier_2(pooled)
        return out

    def forward(self, x: Tensor, labels: Tensor | None = None, return_cam: bool = False) -> dict:
        return self.forward_heads(self.forward_features(x))


def freeze(model: nn.Module) -> nn.Module:
    """Set `requires_grad=False` on every parameter and put the model in eval mode."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()


def make_batch(batch: int, size: int, num_classes: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Seeded normalised-looking images (B, 3, size, size) and labels (B,)."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, size, size, generator=generator)
    labels = torch.randint(0, num_classes, (batch,), generator=generator)
    return images, labels


def numpy_normalize(scoremap: np.ndarray) -> np.ndarray:
    """SPEC §6.4 in NumPy: zeros for NaN or constant maps, else (s − min) / max(s − min)."""
    if np.isnan(scoremap).any() or scoremap.min() == scoremap.max():
        return np.zeros_like(scoremap)
    scoremap = scoremap - scoremap.min()
    return scoremap / scoremap.max()


class LogitsOf(nn.Module):
    """Expose one entry of the model's output dict as a plain logits tensor."""

    def __init__(self, model: nn.Module, key: str) -> None:
        super().__init__()
        self.model = model
        self.key = key

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)[self.key]


def package_heatmaps(
    model: nn.Module, images: Tensor, labels: Tensor, method: str, key: str = "logits"
) -> np.ndarray:
    """Heatmaps of the grad-cam package, normalised with SPEC §6.4, at the input size."""
    reference = copy.deepcopy(model).eval()
    for parameter in reference.parameters():
        parameter.requires_grad_(True)
    layer = reference.get_submodule(reference.cam_layer)
    targets = [ClassifierOutputTarget(int(label)) for label in labels]
    with PACKAGE_CLASSES[method](
        model=LogitsOf(reference, key), target_layers=[layer]
    ) as explainer:
        maps = explainer(input_tensor=images, targets=targets)
    return np.stack([numpy_normalize(m) for m in maps])
