"""The dual-branch model shared by every backbone: one feature map, a softmax head, a sigmoid head.

A backbone subclasses :class:`DualBranchModel`, builds its layers with the exact state-dict names of
SPEC §3.7 and implements :meth:`~DualBranchModel.forward_features` and
:meth:`~DualBranchModel.forward_heads`. The base class provides the output contract of SPEC §3.6
and, for the CAM family, the class activation maps of SPEC §6.1 computed from the head weights.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor, nn

__all__ = ["CONV_INITS", "MODEL_STRUCTURES", "DualBranchModel", "initialize_weights"]

MODEL_STRUCTURES = ("vanilla", "b2")
CONV_INITS = ("he", "xavier")


class DualBranchModel(nn.Module, ABC):
    """Base class of all models: features, head 1 (softmax) and, for ``b2``, head 2 (sigmoid).

    Class attributes set by each backbone:
        architecture: ``vgg16``, ``resnet50`` or ``inception_v3``.
        family: ``cam`` or ``grad`` (SPEC §3.1).
        head_names: attribute names of head 1 and head 2, e.g. ``("fc", "fc2")``.
        cam_reduction: ``mean`` or ``sum`` over channels for the CAM family (SPEC §6.1), else None.

    Instance attributes: ``num_classes``, ``model_structure``, ``large_feature_map``,
    ``branch_init`` (``random`` or ``clone``, see :func:`wsol.models.clone_branch`) and
    ``cam_layer``, the dotted name of the module whose output is the feature map of SPEC
    Appendix A (``dict(model.named_modules())[model.cam_layer]``).
    """

    architecture: ClassVar[str]
    family: ClassVar[str]
    head_names: ClassVar[tuple[str, str]]
    cam_reduction: ClassVar[str | None] = None

    def __init__(self, num_classes: int, model_structure: str, large_feature_map: bool) -> None:
        super().__init__()
        if model_structure not in MODEL_STRUCTURES:
            raise ValueError(
                f"model_structure must be one of {MODEL_STRUCTURES}, got {model_structure!r}"
            )
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        clashes = [name for name in self.head_names if hasattr(DualBranchModel, name)]
        if clashes:
            raise TypeError(f"head names {clashes} of {type(self).__name__} clash with "
                            f"DualBranchModel attributes; rename the head modules")
        self.num_classes = num_classes
        self.model_structure = model_structure
        self.large_feature_map = large_feature_map
        self.branch_init = "random"
        self.cam_layer = ""

    @property
    def has_branch2(self) -> bool:
        """Whether the model has the sigmoid branch (``model_structure == "b2"``)."""
        return self.model_structure == "b2"

    def head(self, branch: int) -> nn.Module:
        """Return head 1 (softmax) or head 2 (sigmoid).

        Raises:
            ValueError: if ``branch`` is not 1 or 2, or is 2 on a vanilla model.
        """
        if branch not in (1, 2):
            raise ValueError(f"branch must be 1 or 2, got {branch!r}")
        if branch == 2 and not self.has_branch2:
            raise ValueError("a vanilla model has no branch 2; build it with model_structure='b2'")
        return getattr(self, self.head_names[branch - 1])

    def output_layer_name(self, branch: int) -> str:
        """Dotted name of the last layer of a head, whose weight has ``num_classes`` rows."""
        head = self.head(branch)
        name = self.head_names[branch - 1]
        return f"{name}.{len(head) - 1}" if isinstance(head, nn.Sequential) else name

    @abstractmethod
    def forward_features(self, x: Tensor) -> Tensor:
        """Map images ``(B, 3, H, W)`` to the feature map ``(B, C, h, w)`` at ``cam_layer``."""

    @abstractmethod
    def forward_heads(self, features: Tensor) -> dict[str, Tensor]:
        """Map the feature map to ``{"logits": (B, K)}`` plus ``"logits2"`` for b2."""

    def _apply_heads(self, x: Tensor) -> dict[str, Tensor]:
        outputs = {"logits": self.head(1)(x)}
        if self.has_branch2:
            outputs["logits2"] = self.head(2)(x)
        return outputs

    def forward(
        self, x: Tensor, labels: Tensor | None = None, return_cam: bool = False
    ) -> dict[str, Tensor]:
        """Run the model (SPEC §3.6).

        Args:
            x: normalised images ``(B, 3, H, W)``.
            labels: classes to explain ``(B,)``; head-1 argmax when None. Used only with
                ``return_cam``.
            return_cam: also return ``cams`` (and ``cams2`` for b2) ``(B, h, w)`` and the
                ``labels`` they explain. CAM family only.

        Returns:
            ``logits`` ``(B, K)``, ``logits2`` for b2, and the CAM entries when asked.

        Raises:
            ValueError: ``return_cam`` on the gradient family, or labels of the wrong shape.
        """
        if return_cam and self.cam_reduction is None:
            raise ValueError(
                f"return_cam needs the CAM family; {self.architecture} is built as family "
                f"{self.family!r} (use a gradient CAM method from cam/ instead)"
            )
        features = self.forward_features(x)
        outputs = self.forward_heads(features)
        if return_cam:
            if labels is None:
                labels = outputs["logits"].argmax(dim=1)
            labels = torch.as_tensor(labels, device=features.device)
            outputs["labels"] = labels
            outputs.update(self.cams_from_features(features, labels))
        return outputs

    def head_weights(self, branch: int) -> Tensor:
        """Weight matrix ``(K, C)`` of head ``branch`` (1 = softmax, 2 = sigmoid). CAM family only.

        Raises:
            ValueError: on the gradient family or for branch 2 of a vanilla model.
        """
        if self.cam_reduction is None:
            raise ValueError(
                f"head_weights is defined for the CAM family only, not {self.family!r}"
            )
        return self.head(branch).weight.flatten(1)

    def cams_from_features(self, features: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Class activation maps of SPEC §6.1 for the given classes, detached, in float32.

        ``cams`` = reduce_c(w_c F_c) with head-1 weights; for b2 ``cams2`` uses max(w2_c, 0)
        (a weight is kept only when strictly positive). The reduction over channels is
        ``cam_reduction`` (mean for VGG16/ResNet50, sum for InceptionV3).

        Args:
            features: feature map ``(B, C, h, w)`` from :meth:`forward_features`.
            labels: class index per image ``(B,)``.

        Returns:
            ``{"cams": (B, h, w)}`` plus ``"cams2"`` for b2.

        Raises:
            ValueError: if ``labels`` does not hold one class per image.
        """
        labels = torch.as_tensor(labels, device=features.device)
        if labels.shape != features.shape[:1]:
            raise ValueError(
                f"labels must have shape ({features.shape[0]},), got {tuple(labels.shape)}"
            )
        feature_map = features.detach().float()
        weights = self.head_weights(1).detach().float()[labels]
        maps = {"cams": self._reduce_channels(weights, feature_map)}
        if self.has_branch2:
            weights2 = self.head_weights(2).detach().float()[labels]
            weights2 = torch.where(weights2 > 0, weights2, torch.zeros_like(weights2))
            maps["cams2"] = self._reduce_channels(weights2, feature_map)
        return maps

    def _reduce_channels(self, weights: Tensor, feature_map: Tensor) -> Tensor:
        weighted = weights[:, :, None, None] * feature_map
        return weighted.mean(dim=1) if self.cam_reduction == "mean" else weighted.sum(dim=1)


def initialize_weights(model: nn.Module, conv_init: str) -> None:
    """Initialise a model as SPEC §3.8 (VGG: ``he``; ResNet50, InceptionV3-CAM: ``xavier``).

    Conv2d: Kaiming-normal (fan_out, ReLU gain) or Xavier-uniform, bias 0. BatchNorm2d: weight 1,
    bias 0. Linear: weight N(0, 0.01²), bias 0.

    Raises:
        ValueError: if ``conv_init`` is not one of :data:`CONV_INITS`.
    """
    if conv_init not in CONV_INITS:
        raise ValueError(f"conv_init must be one of {CONV_INITS}, got {conv_init!r}")
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            if conv_init == "he":
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            nn.init.zeros_(module.bias)
