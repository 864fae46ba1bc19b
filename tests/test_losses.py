"""Losses of SPEC §4 against hand computations."""

import math

import pytest
import torch

from wsol.engine.losses import ClassBalancedBCELoss, DualBranchLoss

LOGITS = [[2.0, -1.0, 0.5], [-0.3, 0.8, -2.2]]
LABELS = [0, 2]


def _sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def _bce_by_hand(logits, labels):
    rows, classes = len(logits), len(logits[0])
    positive_weight = classes - 1
    total = 0.0
    for i, row in enumerate(logits):
        for k, z in enumerate(row):
            if k == labels[i]:
                total -= positive_weight * math.log(_sigmoid(z))
            else:
                total -= math.log(1.0 - _sigmoid(z))
    return total / (rows * classes)


def _ce_by_hand(logits, labels):
    total = 0.0
    for row, label in zip(logits, labels, strict=True):
        total -= row[label] - math.log(sum(math.exp(z) for z in row))
    return total / len(logits)


def test_class_balanced_bce_equals_the_formula():
    loss = ClassBalancedBCELoss(3)(torch.tensor(LOGITS), torch.tensor(LABELS))
    assert loss.item() == pytest.approx(_bce_by_hand(LOGITS, LABELS), rel=1e-6)
    # (1/6)·[−2·log σ(2) − log(1−σ(−1)) − log(1−σ(0.5)) − log(1−σ(−0.3)) − log(1−σ(0.8))
    #        − 2·log σ(−2.2)], evaluated separately
    assert loss.item() == pytest.approx(1.312803, abs=1e-6)


def test_bce_pos_weight_is_k_minus_one():
    assert ClassBalancedBCELoss(200).pos_weight == 199
    assert ClassBalancedBCELoss(1000).pos_weight == 999


def test_bce_is_stable_for_large_logits():
    logits = torch.tensor([[80.0, -80.0]])
    loss = ClassBalancedBCELoss(2)(logits, torch.tensor([1]))
    assert math.isfinite(loss.item())
    assert loss.item() == pytest.approx((80.0 + 80.0) / 2, rel=1e-6)


def test_dual_branch_loss_b2_returns_total_and_parts():
    logits = torch.tensor(LOGITS)
    logits2 = torch.tensor([[0.1, 0.2, -0.4], [1.5, -0.5, 0.3]])
    output = DualBranchLoss(3)({"logits": logits, "logits2": logits2}, torch.tensor(LABELS))
    ce = _ce_by_hand(LOGITS, LABELS)
    bce = _bce_by_hand(logits2.tolist(), LABELS)
    assert output.ce.item() == pytest.approx(ce, rel=1e-6)
    assert output.bce.item() == pytest.approx(bce, rel=1e-6)
    assert output.total.item() == pytest.approx(ce + bce, rel=1e-6)


def test_dual_branch_loss_vanilla_is_cross_entropy():
    output = DualBranchLoss(3)({"logits": torch.tensor(LOGITS)}, torch.tensor(LABELS))
    assert output.bce is None
    assert output.total.item() == pytest.approx(_ce_by_hand(LOGITS, LABELS), rel=1e-6)


def test_gradients_flow_only_through_the_unfrozen_head():
    logits = torch.tensor(LOGITS)
    logits2 = torch.tensor(LOGITS, requires_grad=True)
    output = DualBranchLoss(3)({"logits": logits, "logits2": logits2}, torch.tensor(LABELS))
    output.total.backward()
    assert logits2.grad is not None
    assert logits2.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("logits", "labels", "message"),
    [
        (torch.zeros(2, 4), torch.tensor([0, 1]), r"\(B, 3\)"),
        (torch.zeros(2, 3), torch.tensor([0]), "labels"),
    ],
)
def test_shapes_are_checked(logits, labels, message):
    with pytest.raises(ValueError, match=message):
        ClassBalancedBCELoss(3)(logits, labels)


def test_bce_needs_two_classes():
    with pytest.raises(ValueError, match="at least 2"):
        ClassBalancedBCELoss(1)
