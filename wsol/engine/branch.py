"""Train the sigmoid branch of a b2 model on its frozen backbone and softmax head, outside main.py.

The same pieces as the trainer of ``main.py``: :class:`~wsol.engine.losses.DualBranchLoss`, the
optimizer groups of :func:`~wsol.engine.optim.build_optimizer` and
:func:`~wsol.models.freezing.set_train_mode` with ``branch2``, over any loader of
``(images, labels, ...)`` batches, at a constant learning rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from wsol.engine.losses import DualBranchLoss
from wsol.engine.optim import build_optimizer
from wsol.engine.runtime import unwrap_model
from wsol.models.freezing import set_train_mode

__all__ = ["train_branch"]


def train_branch(
    model: nn.Module,
    loader: Iterable[Sequence[Tensor]],
    *,
    epochs: int = 1,
    lr: float = 0.01,
    device: str | torch.device = "cpu",
    lr_classifier_ratio: float = 10.0,
    weight_decay: float = 1e-4,
    bn_mode: str = "batch_stats",
) -> list[float]:
    """Train only head 2 (the sigmoid branch) of a b2 model with the class-balanced BCE (SPEC §4).

    Backbone, softmax head and BatchNorm statistics stay as they are (``bn_mode``, see
    :func:`~wsol.models.freezing.set_train_mode`).

    Args:
        model: a b2 wsol model (e.g. from :func:`wsol.models.adapter.dual_branch`); moved to
            ``device``.
        loader: batches whose first two items are images ``(B, 3, H, W)`` and labels ``(B,)``.
        epochs: passes over ``loader``.
        lr: base learning rate of the SGD of SPEC §5.1 (the branch's group decides its rate).
        device: where to train.
        lr_classifier_ratio: factor of the scaled optimizer group.
        weight_decay: SGD weight decay.
        bn_mode: ``batch_stats`` (the authors') or ``frozen_eval``.

    Returns:
        The mean sigmoid-branch loss of each epoch. The model is left in eval mode.

    Raises:
        ValueError: for a vanilla model, a non-positive ``epochs`` or an empty loader.
        FloatingPointError: the loss became NaN or infinite.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    device = torch.device(device)
    model.to(device)
    criterion = DualBranchLoss(unwrap_model(model).num_classes)
    set_train_mode(model, "branch2", bn_mode)
    optimizer = build_optimizer(model, lr, lr_classifier_ratio=lr_classifier_ratio,
                                weight_decay=weight_decay)
    epoch_losses = []
    for epoch in range(1, epochs + 1):
        set_train_mode(model, "branch2", bn_mode)
        total, seen = torch.zeros((), device=device), 0
        for batch in loader:
            images, labels = batch[0].to(device), batch[1].to(device)
            loss = criterion(model(images), labels).bce
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(labels)
            seen += len(labels)
        if seen == 0:
            raise ValueError("the loader yielded no images")
        mean = total.item() / seen
        if not math.isfinite(mean):
            raise FloatingPointError(f"the branch loss is {mean} in epoch {epoch}; lower lr")
        epoch_losses.append(mean)
    model.eval()
    return epoch_losses
