"""InceptionV3 of both families: InceptionV3-CAM (SPEC §3.4) and torchvision's Inception3 (§3.5).

The Inception blocks A, C, D, E and ``BasicConv2d`` (conv without bias → BN eps 0.001 → ReLU) are
torchvision's, so parameter names match torchvision's ImageNet weights. InceptionV3-CAM replaces
``Mixed_6a`` by :class:`StridedInceptionB` (stride 1, padding 1), stops after ``Mixed_6e`` and ends
with the SPG-style convolutional head ``SPG_A3_1b`` → ``SPG_A3_2b`` → 1×1 ``SPG_A4``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.inception import (
    BasicConv2d,
    InceptionA,
    InceptionB,
    InceptionC,
    InceptionD,
    InceptionE,
)

from wsol.models.base import DualBranchModel, initialize_weights
from wsol.models.spec import BackboneSpec, ParamGroupRule, TorchvisionMapping

__all__ = ["SPEC", "InceptionV3CAM", "InceptionV3Grad", "StridedInceptionB"]

_DROPOUT = 0.5


class StridedInceptionB(nn.Module):
    """InceptionB with configurable stride and padding; its pool branch is a 3×3 max-pool, pad 1."""

    def __init__(self, in_channels: int, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(
            in_channels, 384, kernel_size=kernel_size, stride=stride, padding=padding
        )
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=stride, padding=padding)
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` → ``(B, 480 + C, H', W')``."""
        branch3x3 = self.branch3x3(x)
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=self.stride, padding=1)
        return torch.cat([branch3x3, branch3x3dbl, branch_pool], dim=1)


def _conv_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU(inplace=True)
    )


class InceptionV3CAM(DualBranchModel):
    """InceptionV3-CAM (the WSOL variant): no ``Mixed_7*``, 1×1-conv heads ``SPG_A4``/``SPG_A4_2``.

    The CAM feature map F (1024×14×14, or 28×28 with ``large_feature_map``) is the input of
    ``SPG_A4`` after the third dropout; the parameter-free module ``cam_features`` outputs it.
    Each head is a 1×1 conv followed by global average pooling; CAMs sum over channels.
    """

    architecture = "inception_v3"
    family = "cam"
    head_names = ("SPG_A4", "SPG_A4_2")
    cam_reduction = "sum"

    def __init__(
        self, num_classes: int, *, model_structure: str = "vanilla", large_feature_map: bool = False
    ) -> None:
        super().__init__(num_classes, model_structure, large_feature_map)
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2, padding=1)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = StridedInceptionB(288, kernel_size=3, stride=1, padding=1)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.SPG_A3_1b = _conv_relu(768, 1024)
        self.SPG_A3_2b = _conv_relu(1024, 1024)
        self.cam_features = nn.Identity()
        self.SPG_A4 = nn.Conv2d(1024, num_classes, kernel_size=1)
        if self.has_branch2:
            self.SPG_A4_2 = nn.Conv2d(1024, num_classes, kernel_size=1)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.cam_layer = "cam_features"
        initialize_weights(self, "xavier")

    def forward_features(self, x: Tensor) -> Tensor:
        """Images ``(B, 3, H, W)`` → F ``(B, 1024, h, w)``; dropout is active in training mode."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1, ceil_mode=True)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1, ceil_mode=True)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))
        if not self.large_feature_map:
            x = F.max_pool2d(x, kernel_size=3, stride=2, ceil_mode=True)
        x = self.Mixed_6a(x)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))
        x = self.SPG_A3_1b(F.dropout(x, _DROPOUT, self.training))
        x = self.SPG_A3_2b(F.dropout(x, _DROPOUT, self.training))
        return self.cam_features(F.dropout(x, _DROPOUT, self.training))

    def forward_heads(self, features: Tensor) -> dict[str, Tensor]:
        """F → 1×1 conv ``SPG_A4`` / ``SPG_A4_2`` → GAP."""
        return {
            key: self.avgpool(class_map).flatten(1)
            for key, class_map in self._apply_heads(features).items()
        }


class InceptionV3Grad(DualBranchModel):
    """torchvision's Inception3 (no AuxLogits, no input transform) with ``fc`` and ``fc2``.

    ``large_feature_map`` is accepted and ignored. The target layer is ``Mixed_7c`` (5×5 at 224).
    Initialisation: truncated N(0, 0.1²) cut at ±2 for conv and linear weights, BN 1/0, linear
    biases keep PyTorch's default (SPEC §3.8).
    """

    architecture = "inception_v3"
    family = "grad"
    head_names = ("fc", "fc2")

    def __init__(
        self, num_classes: int, *, model_structure: str = "vanilla", large_feature_map: bool = False
    ) -> None:
        super().__init__(num_classes, model_structure, large_feature_map)
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(_DROPOUT)
        self.fc = nn.Linear(2048, num_classes)
        if self.has_branch2:
            self.fc2 = nn.Linear(2048, num_classes)
        self.cam_layer = "Mixed_7c"
        self._init_truncated_normal()

    def _init_truncated_normal(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(module.weight, mean=0.0, std=0.1, a=-2.0, b=2.0)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """Images ``(B, 3, H, W)`` → ``Mixed_7c`` output ``(B, 2048, h, w)``."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(self.maxpool1(x)))
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(self.maxpool2(x))))
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(self.Mixed_6a(x)))))
        return self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))

    def forward_heads(self, features: Tensor) -> dict[str, Tensor]:
        """Features → GAP → dropout (one mask shared by both heads) → ``fc`` / ``fc2``."""
        return self._apply_heads(self.dropout(self.avgpool(features)).flatten(1))


SPEC = BackboneSpec(
    name="inception_v3",
    display_name="InceptionV3",
    models={"cam": InceptionV3CAM, "grad": InceptionV3Grad},
    signature_key="Mixed_5b.branch1x1.conv.weight",
    param_groups=ParamGroupRule(
        patterns=("Mixed", "Conv2d_1", "Conv2d_2", "Conv2d_3", "Conv2d_4"),
        matches_are_scaled=False,
    ),
    family_keys={"cam": "SPG_A", "grad": "Mixed_7"},
    torchvision_files=("inception_v3_google-1a9a5a14.pth", "inception_v3_google-0cc3c7bd.pth"),
    folder_files=("inception_v3.pth", "inceptionv3.pth"),
    torchvision={
        "cam": TorchvisionMapping(
            drop=("Mixed_7", "AuxLogits", "fc."),
            new_layers=("SPG_A3_1b.", "SPG_A3_2b.", "SPG_A4.", "SPG_A4_2."),
        ),
        "grad": TorchvisionMapping(drop=("AuxLogits",), drop_unless_head=("fc.",),
                                   new_layers=("fc2.",)),
    },
)
