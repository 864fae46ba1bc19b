"""CAM in closed form for the CAM-family models (SPEC §6.1)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cam.base import CAMMethod, CAMResult, Labels

__all__ = ["CAM"]


class CAM(CAMMethod):
    r"""CAM in closed form (SPEC §6.1).

    From `"Learning Deep Features for Discriminative Localization"
    <https://arxiv.org/abs/1512.04150>`_:

    .. math::
        M = \frac{1}{C} \sum_c w_c F_c \ \text{(VGG16, ResNet50)}, \qquad
        M = \sum_c w_c F_c \ \text{(InceptionV3)}

    F = `model.forward_features(x)`, w = the explained class's row of `model.head_weights(branch)`,
    the reduction is `model.cam_reduction` (SPEC A3); no bias, no ReLU. For b2, w ← max(w, 0)
    (SPEC A2). Needs no hook and no backward pass.

    Args:
        model: a CAM-family model (`forward_features`, `forward_heads`, `head_weights`,
            `cam_reduction`), in eval mode.
        target_layer: must be None; CAM always uses the model's feature map.
        clamp_negative: clamp the head weights at 0; None means on for b2, off for vanilla.

    Raises:
        ValueError: if the model is not of the CAM family or a target layer is given.
    """

    def __init__(
        self,
        model: nn.Module,
        target_layer: str | None = None,
        *,
        clamp_negative: bool | None = None,
    ) -> None:
        super().__init__(model, target_layer, clamp_negative=clamp_negative)
        if target_layer is not None:
            raise ValueError("CAM uses model.forward_features; it takes no target layer")
        reduction = getattr(model, "cam_reduction", None)
        if reduction not in ("mean", "sum") or not hasattr(model, "head_weights"):
            raise ValueError(
                "CAM needs a CAM-family model (head_weights, cam_reduction 'mean' or "
                f"'sum'); got family {getattr(model, 'family', None)!r}"
            )

    def explain(self, images: Tensor, labels: Labels = None) -> CAMResult:
        """Run one forward pass and return the closed-form maps (see `CAMMethod.explain`).

        Raises:
            RuntimeError: in train mode.
            ValueError: for a wrong image shape or labels of the wrong length or range.
        """
        images = self._prepare(images)
        with torch.no_grad():
            features = self.model.forward_features(images)
            outputs = self.model.forward_heads(features)
            labels = self._labels(labels, outputs)
            weights = self.model.head_weights(self.branch).detach()[labels]
            if self.clamp_negative:
                weights = weights.clamp_min(0)
            weighted = weights[:, :, None, None] * features.detach()
            maps = (
                weighted.mean(dim=1) if self.model.cam_reduction == "mean" else weighted.sum(dim=1)
            )
        return CAMResult(maps=maps.float(), labels=labels, outputs=dict(outputs))
