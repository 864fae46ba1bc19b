"""The softmax head's free shift and the sign collapse it allows, measured on a trained model.

Softmax is invariant to adding one vector ``v`` to every class row of the last linear layer (and
one number to every bias): every logit moves by the same ``v·h + β``, so the probabilities, the
predictions and the cross-entropy do not change, while a class's CAM gains ``v·F`` and moves. A
large enough negative ``v`` makes every class row negative ("sign collapse"): the CAM of any class
then peaks where the features are weakest. A sigmoid head has no such freedom: the same shift
changes its probabilities and its loss, and the branch's clamped maps keep only positive weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from wsol.engine.losses import ClassBalancedBCELoss
from wsol.models.base import DualBranchModel

__all__ = ["HeadOutputs", "ShiftEffect", "collapse_shift", "head_outputs", "output_layer",
           "shift_effect", "shift_head", "uniform_shift"]


def output_layer(model: DualBranchModel, branch: int) -> nn.Linear:
    """The last linear layer of head ``branch`` (1 = softmax, 2 = sigmoid)."""
    return dict(model.named_modules())[model.output_layer_name(branch)]


def uniform_shift(weight: Tensor) -> Tensor:
    """A shift of every channel by the largest weight magnitude of the layer: ``max|W| · 1``."""
    return torch.full_like(weight[0], float(weight.abs().max()))


def collapse_shift(weight: Tensor, margin: float = 0.1) -> Tensor:
    """The shift that makes every class row negative: ``−max_k W_kc − margin · max|W|``."""
    return -weight.max(dim=0).values - margin * weight.abs().max()


def shift_head(model: DualBranchModel, branch: int, vector: Tensor, bias: float) -> None:
    """Add ``vector`` to every class row of head ``branch``'s last layer, ``bias`` to its bias."""
    layer = output_layer(model, branch)
    with torch.no_grad():
        layer.weight += vector.to(layer.weight)
        layer.bias += bias


@dataclass(frozen=True)
class HeadOutputs:
    """Logits of both heads on a whole split, with the labels."""

    logits: Tensor
    logits2: Tensor | None
    labels: Tensor


@torch.no_grad()
def head_outputs(model: DualBranchModel, loader: DataLoader) -> HeadOutputs:
    """Run the model in eval mode over ``loader`` (images, labels, ids) on the CPU."""
    model.eval()
    logits, logits2, labels = [], [], []
    for images, batch_labels, _ in loader:
        outputs = model(images)
        logits.append(outputs["logits"])
        if "logits2" in outputs:
            logits2.append(outputs["logits2"])
        labels.append(batch_labels)
    return HeadOutputs(torch.cat(logits), torch.cat(logits2) if logits2 else None,
                       torch.cat(labels))


@dataclass(frozen=True)
class ShiftEffect:
    """What a head shift changed (``*_change`` are the largest absolute changes)."""

    predictions_identical: bool
    softmax_change: float
    cross_entropy: tuple[float, float]
    sigmoid_change: float | None
    sigmoid_loss: tuple[float, float] | None


def shift_effect(before: HeadOutputs, after: HeadOutputs) -> ShiftEffect:
    """Compare the outputs of a model before and after a head shift."""
    def cross_entropy(outputs: HeadOutputs) -> float:
        return float(nn.functional.cross_entropy(outputs.logits, outputs.labels))

    softmax_change = (before.logits.softmax(1) - after.logits.softmax(1)).abs().max()
    sigmoid_change = sigmoid_loss = None
    if before.logits2 is not None and after.logits2 is not None:
        loss = ClassBalancedBCELoss(before.logits2.shape[1])
        sigmoid_change = float((before.logits2.sigmoid() - after.logits2.sigmoid()).abs().max())
        sigmoid_loss = (float(loss(before.logits2, before.labels)),
                        float(loss(after.logits2, after.labels)))
    return ShiftEffect(
        predictions_identical=bool(torch.equal(before.logits.argmax(1), after.logits.argmax(1))),
        softmax_change=float(softmax_change),
        cross_entropy=(cross_entropy(before), cross_entropy(after)),
        sigmoid_change=sigmoid_change, sigmoid_loss=sigmoid_loss)
