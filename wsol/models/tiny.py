"""TinyCNN: a small registered backbone of both families, for fast tests and the CPU demo.

Four 3×3 conv–BN–ReLU stages (16, 32, 64, 128 channels) with 2×2 max-pools after the first three,
so the feature map is 128×28×28 at 224 (56×56 with ``large_feature_map``, which drops the third
pool), then global average pooling and ``fc`` (and ``fc2``). Like ResNet50, the two families share
every parameter and differ only in ``family``: a checkpoint of one loads into the other, so one
vanilla model serves CAM and the gradient methods. It has no ImageNet weights.
"""

from __future__ import annotations

from torch import Tensor, nn

from wsol.models.base import DualBranchModel, initialize_weights
from wsol.models.spec import BackboneSpec, ParamGroupRule

__all__ = ["SPEC", "TinyCNN", "TinyCNNCAM", "TinyCNNGrad"]

_WIDTHS = (16, 32, 64, 128)


def _features(large_feature_map: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    pools = len(_WIDTHS) - (2 if large_feature_map else 1)
    for index, width in enumerate(_WIDTHS):
        layers += [nn.Conv2d(in_channels, width, kernel_size=3, padding=1),
                   nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        if index < pools:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        in_channels = width
    return nn.Sequential(*layers)


class TinyCNN(DualBranchModel):
    """``features`` → GAP → ``fc`` (and ``fc2``); the target layer is the last in-place ReLU."""

    architecture = "tiny_cnn"
    head_names = ("fc", "fc2")

    def __init__(
        self, num_classes: int, *, model_structure: str = "vanilla", large_feature_map: bool = False
    ) -> None:
        super().__init__(num_classes, model_structure, large_feature_map)
        self.features = _features(large_feature_map)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(_WIDTHS[-1], num_classes)
        if self.has_branch2:
            self.fc2 = nn.Linear(_WIDTHS[-1], num_classes)
        self.cam_layer = f"features.{len(self.features) - 1}"
        initialize_weights(self, "he")

    def forward_features(self, x: Tensor) -> Tensor:
        """Images ``(B, 3, H, W)`` → ``(B, 128, H/8, W/8)``."""
        return self.features(x)

    def forward_heads(self, features: Tensor) -> dict[str, Tensor]:
        """Features → GAP → ``fc`` / ``fc2``."""
        return self._apply_heads(self.avgpool(features).flatten(1))


class TinyCNNCAM(TinyCNN):
    """TinyCNN-CAM: CAMs from the head weights, mean over channels."""

    family = "cam"
    cam_reduction = "mean"


class TinyCNNGrad(TinyCNN):
    """TinyCNN explained by the gradient methods (same parameters as :class:`TinyCNNCAM`)."""

    family = "grad"


SPEC = BackboneSpec(
    name="tiny_cnn",
    display_name="TinyCNN",
    models={"cam": TinyCNNCAM, "grad": TinyCNNGrad},
    signature_key="features.1.running_mean",
    param_groups=ParamGroupRule(patterns=("features.",), matches_are_scaled=False),
)
