"""Losses of the two heads (SPEC §4): cross-entropy and class-balanced binary cross-entropy.

With the authors' defaults (temperature 1, gamma 1, never exposed on their command line) head 1
uses the multi-class cross-entropy and head 2 the "with logits" BCE against one-hot targets with
one scalar ``pos_weight = K − 1`` for every class, averaged over all B·K elements (SPEC A17).
"""

from __future__ import annotations

from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ClassBalancedBCELoss", "DualBranchLoss", "DualBranchLossOutput"]


def _check_logits(logits: Tensor, labels: Tensor, num_classes: int) -> None:
    if logits.ndim != 2 or logits.shape[1] != num_classes:
        raise ValueError(f"logits must have shape (B, {num_classes}), got {tuple(logits.shape)}")
    if labels.shape != logits.shape[:1]:
        raise ValueError(f"labels must have shape ({logits.shape[0]},), got {tuple(labels.shape)}")


class ClassBalancedBCELoss(nn.Module):
    """L = mean over (i, k) of −[p·Y_ik·log σ(z_ik) + (1 − Y_ik)·log(1 − σ(z_ik))], p = K − 1.

    Args:
        num_classes: K (at least 2).
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes = num_classes
        self.pos_weight = float(num_classes - 1)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Loss of the sigmoid head.

        Args:
            logits: raw scores ``(B, K)``.
            labels: integer class per image ``(B,)``.

        Returns:
            Scalar loss.
        """
        _check_logits(logits, labels, self.num_classes)
        targets = F.one_hot(labels.long(), self.num_classes).to(logits.dtype)
        pos_weight = logits.new_tensor(self.pos_weight)
        return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)


class DualBranchLossOutput(NamedTuple):
    """Total loss and its parts; ``bce`` is None for a vanilla model."""

    total: Tensor
    ce: Tensor
    bce: Tensor | None


class DualBranchLoss(nn.Module):
    """CE on ``logits``, plus class-balanced BCE on ``logits2`` when the model returns it.

    The total is CE + BCE even when head 1 is frozen (it then carries no gradient and only
    shifts the logged value, SPEC A16); both parts are returned for logging.

    Args:
        num_classes: K.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.bce = ClassBalancedBCELoss(num_classes)

    def forward(self, outputs: dict[str, Tensor], labels: Tensor) -> DualBranchLossOutput:
        """Loss of a model output dict (SPEC §3.6).

        Args:
            outputs: ``{"logits": (B, K)}`` and, for b2, ``"logits2"``.
            labels: integer class per image ``(B,)``.

        Returns:
            ``(total, ce, bce)``.
        """
        logits = outputs["logits"]
        _check_logits(logits, labels, self.num_classes)
        ce = F.cross_entropy(logits, labels.long())
        if "logits2" not in outputs:
            return DualBranchLossOutput(ce, ce, None)
        bce = self.bce(outputs["logits2"], labels)
        return DualBranchLossOutput(ce + bce, ce, bce)
