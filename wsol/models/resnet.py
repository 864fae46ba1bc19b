"""ResNet50 of both families (SPEC §3.3): torchvision's layout with ``layer4`` at stride 1.

The two families share every parameter; they differ only in the ``family`` attribute, which
decides whether the model computes CAMs itself (``cam``) or is explained by the gradient methods
of ``cam/`` (``grad``). A checkpoint of one family therefore loads strictly into the other.
"""

from __future__ import annotations

from torch import Tensor, nn

from wsol.models.base import DualBranchModel, initialize_weights
from wsol.models.spec import BackboneSpec, ParamGroupRule, TorchvisionMapping

__all__ = ["SPEC", "Bottleneck", "ResNet50", "ResNet50CAM", "ResNet50Grad"]

_LAYERS = (3, 4, 6, 3)


class Bottleneck(nn.Module):
    """1×1 → 3×3 (carries the stride) → 1×1 residual block, expansion 4."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """Residual block ``(B, inplanes, H, W)`` → ``(B, 4·planes, H/stride, W/stride)``."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _make_layer(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    outplanes = planes * Bottleneck.expansion
    downsample = None
    if stride != 1 or inplanes != outplanes:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, outplanes, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(outplanes),
        )
    layers = [Bottleneck(inplanes, planes, stride, downsample)]
    layers += [Bottleneck(outplanes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class ResNet50(DualBranchModel):
    """ResNet50 with heads ``fc`` (and ``fc2``) on the global average of ``layer4``.

    ``layer3`` has stride 2 (1 with ``large_feature_map``), ``layer4`` stride 1, so the feature map
    is 2048×14×14 (28×28) at 224. The target layer is ``layer4[-1]`` (``layer4.2``).
    """

    architecture = "resnet50"
    head_names = ("fc", "fc2")

    def __init__(
        self, num_classes: int, *, model_structure: str = "vanilla", large_feature_map: bool = False
    ) -> None:
        super().__init__(num_classes, model_structure, large_feature_map)
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _make_layer(64, 64, _LAYERS[0], stride=1)
        self.layer2 = _make_layer(256, 128, _LAYERS[1], stride=2)
        self.layer3 = _make_layer(512, 256, _LAYERS[2], stride=1 if large_feature_map else 2)
        self.layer4 = _make_layer(1024, 512, _LAYERS[3], stride=1)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, num_classes)
        if self.has_branch2:
            self.fc2 = nn.Linear(2048, num_classes)
        self.cam_layer = f"layer4.{len(self.layer4) - 1}"
        initialize_weights(self, "xavier")

    def forward_features(self, x: Tensor) -> Tensor:
        """Images ``(B, 3, H, W)`` → ``(B, 2048, h, w)``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_heads(self, features: Tensor) -> dict[str, Tensor]:
        """Features → GAP → ``fc`` / ``fc2``."""
        return self._apply_heads(self.avgpool(features).flatten(1))


class ResNet50CAM(ResNet50):
    """ResNet50-CAM: CAMs from the head weights, mean over channels (SPEC §6.1)."""

    family = "cam"
    cam_reduction = "mean"


class ResNet50Grad(ResNet50):
    """ResNet50 explained by the gradient methods (same parameters as :class:`ResNet50CAM`)."""

    family = "grad"


_TORCHVISION = TorchvisionMapping(drop_unless_head=("fc",), new_layers=("fc2.",))

SPEC = BackboneSpec(
    name="resnet50",
    display_name="ResNet50",
    models={"cam": ResNet50CAM, "grad": ResNet50Grad},
    signature_key="layer1.0.conv1.weight",
    # "fc." does not match "fc2.": the sigmoid head trains at the base lr (SPEC A7)
    param_groups=ParamGroupRule(patterns=("layer4.", "fc."), matches_are_scaled=True),
    torchvision_files=("resnet50-19c8e357.pth", "resnet50-0676ba61.pth"),
    folder_files=("resnet50.pth",),
    torchvision={"cam": _TORCHVISION, "grad": _TORCHVISION},
    renamed_head_modes=("fc", "conv"),
)
