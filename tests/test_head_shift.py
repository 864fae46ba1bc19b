"""The softmax head's free shift and sign collapse (wsol.report.head_shift) on a tiny model."""

from __future__ import annotations

import copy

import torch

from wsol.models.registry import build_model
from wsol.report.head_shift import (
    collapse_shift,
    head_outputs,
    output_layer,
    shift_effect,
    shift_head,
    uniform_shift,
)


def _model_and_batches() -> tuple[torch.nn.Module, list]:
    torch.manual_seed(0)
    model = build_model("tiny_cnn", "cam", 3, model_structure="b2").eval()
    with torch.no_grad():  # trained-looking heads: weights of both signs, well above init scale
        for branch in (1, 2):
            output_layer(model, branch).weight.normal_(0.0, 0.5)
    batches = [(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0]), ["a", "b", "c", "d"])]
    return model, batches


def test_softmax_shift_keeps_predictions_and_moves_the_cams() -> None:
    model, batches = _model_and_batches()
    before = head_outputs(model, batches)
    images, labels, _ = batches[0]
    cams = model(images, labels, return_cam=True)["cams"]
    for shift in (uniform_shift, collapse_shift):
        shifted = copy.deepcopy(model)
        shift_head(shifted, 1, shift(output_layer(model, 1).weight.detach()), 1.0)
        effect = shift_effect(before, head_outputs(shifted, batches))
        assert effect.predictions_identical
        assert effect.softmax_change < 1e-5
        assert abs(effect.cross_entropy[0] - effect.cross_entropy[1]) < 1e-5
        assert effect.sigmoid_change == 0.0  # head 2 untouched
        assert (shifted(images, labels, return_cam=True)["cams"] - cams).abs().max() > 1e-3


def test_collapse_makes_every_row_negative_and_inverts_the_cam() -> None:
    model, batches = _model_and_batches()
    images, labels, _ = batches[0]
    shift_head(model, 1, collapse_shift(output_layer(model, 1).weight.detach()), 0.0)
    assert (output_layer(model, 1).weight < 0).all()
    assert (model(images, labels, return_cam=True)["cams"] <= 0).all()


def test_the_same_shift_is_not_free_for_the_sigmoid_head() -> None:
    model, batches = _model_and_batches()
    before = head_outputs(model, batches)
    shift_head(model, 2, uniform_shift(output_layer(model, 2).weight.detach()), 1.0)
    effect = shift_effect(before, head_outputs(model, batches))
    assert effect.sigmoid_change > 0.01
    assert effect.sigmoid_loss[1] != effect.sigmoid_loss[0]
    assert effect.softmax_change == 0.0 and effect.predictions_identical
