"""Optimizer parameter groups and the step-decay schedule (SPEC §5.1, §5.2).

Parameters are split by the substring patterns each backbone declares
(:class:`wsol.models.spec.ParamGroupRule`; the authors' patterns for the paper backbones) on
their full names (a ``module.`` prefix from a wrapper does not change the result). Group 0 runs
at ``lr``, group 1 at ``lr × lr_classifier_ratio``. For ResNet50 the pattern is ``fc.``, which
``fc2.`` does not contain: the sigmoid head of ResNet50 trains at the base ``lr`` (SPEC A7).
Frozen parameters stay in their groups; they receive no gradient and are neither decayed nor
updated.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from wsol.engine.runtime import unwrap_model
from wsol.models.registry import get_backbone

__all__ = [
    "adjust_learning_rate",
    "build_optimizer",
    "lr_for_epoch",
    "param_groups",
]

_DECAY = 0.1


def param_groups(model: nn.Module, lr: float, lr_classifier_ratio: float) -> list[dict]:
    """Split ``model.named_parameters()`` into the two groups of SPEC §5.1.

    Args:
        model: a wsol model (its backbone's spec gives the patterns), possibly wrapped in
            (Distributed)DataParallel.
        lr: base learning rate (group 0).
        lr_classifier_ratio: factor of group 1.

    Returns:
        ``[{"params", "lr"} for group 0, for group 1]``.

    Raises:
        ValueError: for an unknown architecture.
    """
    rule = get_backbone(unwrap_model(model).architecture).param_groups
    base, scaled = [], []
    for name, param in model.named_parameters():
        (scaled if rule.is_scaled(name) else base).append(param)
    return [{"params": base, "lr": lr}, {"params": scaled, "lr": lr * lr_classifier_ratio}]


def build_optimizer(
    model: nn.Module,
    lr: float,
    *,
    lr_classifier_ratio: float = 10.0,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
) -> torch.optim.SGD:
    """SGD with Nesterov momentum, dampening 0 and coupled weight decay on both groups."""
    return torch.optim.SGD(
        param_groups(model, lr, lr_classifier_ratio),
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        nesterov=True,
    )


def lr_for_epoch(base_lr: float, epoch: int, decay_frequency: int) -> float:
    """Learning rate during epoch ``epoch`` (1-based) under the step decay of SPEC §5.2.

    At the start of every epoch e with e mod ``decay_frequency`` == 0 the rate is multiplied by
    0.1, cumulatively, so epoch e runs at ``base_lr`` × 0.1^⌊e / decay_frequency⌋ (multiplied
    step by step, as the authors' in-place update does).

    Raises:
        ValueError: if ``decay_frequency`` is not positive or ``epoch`` is negative.
    """
    if decay_frequency < 1:
        raise ValueError(f"decay_frequency must be positive, got {decay_frequency}")
    if epoch < 0:
        raise ValueError(f"epoch must be non-negative, got {epoch}")
    lr = base_lr
    for _ in range(epoch // decay_frequency):
        lr *= _DECAY
    return lr


def adjust_learning_rate(
    optimizer: torch.optim.Optimizer, epoch: int, base_lrs: Sequence[float], decay_frequency: int
) -> list[float]:
    """Set every group's lr for ``epoch`` from its base lr; call at the start of each epoch.

    Stateless, so resuming at any epoch gives the same rates.

    Returns:
        The learning rates now set, one per group.

    Raises:
        ValueError: if ``base_lrs`` does not have one entry per group.
    """
    if len(base_lrs) != len(optimizer.param_groups):
        raise ValueError(
            f"need one base lr per parameter group ({len(optimizer.param_groups)}), "
            f"got {len(base_lrs)}"
        )
    lrs = [lr_for_epoch(base, epoch, decay_frequency) for base in base_lrs]
    for group, lr in zip(optimizer.param_groups, lrs, strict=True):
        group["lr"] = lr
    return lrs
