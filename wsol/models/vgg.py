"""VGG16 of both families: VGG16-CAM (SPEC §3.2) and the gradient-family VGG16 (SPEC §3.5).

Both share the convolutional body ``features`` without pool5. The ``14x14`` layout keeps
torchvision's indices; the ``28x28`` layout (``large_feature_map``) drops the fourth max-pool.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from torch import Tensor, nn

from wsol.models.base import DualBranchModel, initialize_weights
from wsol.models.spec import (
    BackboneSpec,
    CheckpointMismatchError,
    ParamGroupRule,
    StateDict,
    TorchvisionMapping,
)

__all__ = ["FEATURE_CONFIGS", "SPEC", "VGG16CAM", "VGG16Grad", "make_features"]

_POOL = "M"
FEATURE_CONFIGS: dict[str, list[int | str]] = {
    "14x14": [64, 64, _POOL, 128, 128, _POOL, 256, 256, 256, _POOL, 512, 512, 512, _POOL,
              512, 512, 512],
    "28x28": [64, 64, _POOL, 128, 128, _POOL, 256, 256, 256, _POOL, 512, 512, 512,
              512, 512, 512],
}


def make_features(large_feature_map: bool) -> nn.Sequential:
    """Build ``features``: 3×3 convs (padding 1) with in-place ReLU, and 2×2 max-pools.

    Args:
        large_feature_map: use the ``28x28`` layout (512×28×28 at 224) instead of ``14x14``.

    Returns:
        The body, 512 channels at stride 16 (or 8).
    """
    layers: list[nn.Module] = []
    in_channels = 3
    for item in FEATURE_CONFIGS["28x28" if large_feature_map else "14x14"]:
        if item == _POOL:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            conv = nn.Conv2d(in_channels, item, kernel_size=3, padding=1)
            layers += [conv, nn.ReLU(inplace=True)]
            in_channels = item
    return nn.Sequential(*layers)


class VGG16CAM(DualBranchModel):
    """VGG16-CAM: ``features`` → ``conv6`` (512→1024) → ``relu`` → GAP → ``fc`` (and ``fc2``).

    The CAM feature map is the output of ``relu`` (1024×14×14, or 28×28).
    """

    architecture = "vgg16"
    family = "cam"
    head_names = ("fc", "fc2")
    cam_reduction = "mean"

    def __init__(
        self, num_classes: int, *, model_structure: str = "vanilla", large_feature_map: bool = False
    ) -> None:
        super().__init__(num_classes, model_structure, large_feature_map)
        self.features = make_features(large_feature_map)
        self.conv6 = nn.Conv2d(512, 1024, kernel_size=3, padding=1)
        self.relu = nn.ReLU(inplace=False)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(1024, num_classes)
        if self.has_branch2:
            self.fc2 = nn.Linear(1024, num_classes)
        self.cam_layer = "relu"
        initialize_weights(self, "he")

    def forward_features(self, x: Tensor) -> Tensor:
        """Images ``(B, 3, H, W)`` → F ``(B, 1024, h, w)``."""
        return self.relu(self.conv6(self.features(x)))

    def forward_heads(self, features: Tensor) -> dict[str, Tensor]:
        """F → GAP → ``fc`` / ``fc2``."""
        return self._apply_heads(self.avgpool(features).flatten(1))


def _mlp_classifier(num_classes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(512 * 7 * 7, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(4096, num_classes),
    )


class VGG16Grad(DualBranchModel):
    """Gradient-family VGG16: ``features`` → adaptive avg-pool 7×7 → MLP ``classifier``.

    b2 adds ``classifier_2`` with the same structure on the same flattened vector. The target
    layer of the gradient methods is ``features[-1]``, the in-place ReLU after conv5_3.
    """

    architecture = "vgg16"
    family = "grad"
    head_names = ("classifier", "classifier_2")

    def __init__(
        self, num_classes: int, *, model_structure: str = "vanilla", large_feature_map: bool = False
    ) -> None:
        super().__init__(num_classes, model_structure, large_feature_map)
        self.features = make_features(large_feature_map)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = _mlp_classifier(num_classes)
        if self.has_branch2:
            self.classifier_2 = _mlp_classifier(num_classes)
        self.cam_layer = f"features.{len(self.features) - 1}"
        initialize_weights(self, "he")

    def forward_features(self, x: Tensor) -> Tensor:
        """Images ``(B, 3, H, W)`` → ``(B, 512, h, w)``."""
        return self.features(x)

    def forward_heads(self, features: Tensor) -> dict[str, Tensor]:
        """Features → 7×7 average pool → flatten → ``classifier`` / ``classifier_2``."""
        return self._apply_heads(self.avgpool(features).flatten(1))


def _feature_indices(keys: Iterable[str]) -> set[int]:
    return {int(key.split(".")[1]) for key in keys if key.startswith("features.")}


def _layout(indices: set[int]) -> str:
    return "28x28 (large_feature_map=True)" if 27 in indices else "14x14 (large_feature_map=False)"


def check_feature_layout(model: DualBranchModel, state: Mapping[str, Tensor]) -> None:
    """Refuse a checkpoint of the other feature layout (14x14 vs 28x28)."""
    found = _feature_indices(state)
    expected = _feature_indices(model.state_dict())
    if found != expected:
        raise CheckpointMismatchError(
            f"VGG16 feature layout mismatch: the checkpoint uses {_layout(found)}, the model "
            f"{_layout(expected)}"
        )


def reindex_torchvision_features(state: StateDict, model: DualBranchModel) -> StateDict:
    """Pair torchvision's conv indices with the model's, both sorted descending (SPEC §3.9)."""
    source = sorted(_feature_indices(state), reverse=True)
    target = sorted(_feature_indices(model.state_dict()), reverse=True)
    if len(source) != len(target):
        raise CheckpointMismatchError(
            f"the weights have {len(source)} convolutions in 'features', VGG16 has {len(target)}: "
            f"not torchvision's VGG16"
        )
    mapping = dict(zip(source, target, strict=True))
    renamed = {}
    for key, value in state.items():
        if key.startswith("features."):
            _, index, rest = key.split(".", 2)
            key = f"features.{mapping[int(index)]}.{rest}"
        renamed[key] = value
    return renamed


SPEC = BackboneSpec(
    name="vgg16",
    display_name="VGG16",
    models={"cam": VGG16CAM, "grad": VGG16Grad},
    signature_key="features.2.weight",
    param_groups=ParamGroupRule(patterns=("features.",), matches_are_scaled=False),
    family_keys={"cam": "conv6.", "grad": "classifier."},
    torchvision_files=("vgg16-397923af.pth",),
    folder_files=("vgg16.pth",),
    torchvision={
        "cam": TorchvisionMapping(drop=("classifier.",), new_layers=("conv6.", "fc.", "fc2.")),
        "grad": TorchvisionMapping(drop_unless_head=("classifier.",),
                                   new_layers=("classifier_2.",)),
    },
    renamed_head_modes=("fc", "conv"),
    check_state=check_feature_layout,
    adapt_torchvision=reindex_torchvision_features,
)
