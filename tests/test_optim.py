"""Parameter groups (SPEC §5.1) and the step decay (SPEC §5.2)."""

import pytest
import torch
from torch import nn

from wsol.engine.optim import adjust_learning_rate, build_optimizer, lr_for_epoch, param_groups
from wsol.models.registry import build_model

LR, RATIO = 0.01, 10.0


def _meta(architecture, family):
    with torch.device("meta"):
        return build_model(architecture, family, 5, model_structure="b2")


def _group_names(model, groups):
    names = {id(param): name for name, param in model.named_parameters()}
    return [{names[id(param)] for param in group["params"]} for group in groups]


def _top_modules(names):
    return {name.split(".")[0] for name in names}


@pytest.mark.parametrize(
    ("architecture", "family", "scaled_modules"),
    [
        ("vgg16", "cam", {"conv6", "fc", "fc2"}),
        ("vgg16", "grad", {"classifier", "classifier_2"}),
        ("inception_v3", "cam", {"SPG_A3_1b", "SPG_A3_2b", "SPG_A4", "SPG_A4_2"}),
        ("inception_v3", "grad", {"fc", "fc2"}),
        ("resnet50", "cam", {"layer4", "fc"}),
        ("resnet50", "grad", {"layer4", "fc"}),
    ],
)
def test_param_groups(architecture, family, scaled_modules):
    model = _meta(architecture, family)
    groups = param_groups(model, LR, RATIO)
    assert [group["lr"] for group in groups] == [LR, LR * RATIO]
    base, scaled = _group_names(model, groups)
    assert _top_modules(scaled) == scaled_modules
    assert not base & scaled
    assert base | scaled == {name for name, _ in model.named_parameters()}


def test_resnet_sigmoid_head_gets_the_base_lr():
    model = _meta("resnet50", "cam")
    base, scaled = _group_names(model, param_groups(model, LR, RATIO))
    assert {"fc2.weight", "fc2.bias"} <= base
    assert {"fc.weight", "fc.bias", "layer4.2.conv3.weight"} <= scaled


def test_wrapped_model_gives_the_same_groups():
    model = _meta("vgg16", "cam")
    plain = param_groups(model, LR, RATIO)
    wrapped = param_groups(nn.DataParallel(model), LR, RATIO)
    assert [len(g["params"]) for g in plain] == [len(g["params"]) for g in wrapped] == [26, 6]


def test_build_optimizer_is_nesterov_sgd():
    optimizer = build_optimizer(_meta("resnet50", "cam"), LR, momentum=0.9, weight_decay=5e-4)
    assert isinstance(optimizer, torch.optim.SGD)
    for group in optimizer.param_groups:
        assert group["nesterov"]
        assert group["momentum"] == 0.9
        assert group["weight_decay"] == 5e-4
        assert group["dampening"] == 0
    assert [group["lr"] for group in optimizer.param_groups] == [LR, LR * 10]


def test_lr_for_epoch_readme_example():
    assert [lr_for_epoch(0.003, epoch, 3) for epoch in (1, 2, 3)] == [0.003, 0.003, 0.003 * 0.1]


def test_lr_for_epoch_is_cumulative():
    expected = 0.01 * 0.1 * 0.1
    assert lr_for_epoch(0.01, 6, 3) == expected
    assert lr_for_epoch(0.01, 8, 3) == expected
    assert lr_for_epoch(0.01, 0, 3) == 0.01
    assert lr_for_epoch(0.01, 29, 30) == 0.01
    assert lr_for_epoch(0.01, 30, 30) == pytest.approx(0.001)


def test_adjust_learning_rate_sets_every_group():
    optimizer = build_optimizer(_meta("vgg16", "cam"), LR)
    assert adjust_learning_rate(optimizer, 3, [LR, LR * RATIO], 3) == [LR * 0.1, LR * RATIO * 0.1]
    assert [group["lr"] for group in optimizer.param_groups] == [LR * 0.1, LR * RATIO * 0.1]
    assert adjust_learning_rate(optimizer, 1, [LR, LR * RATIO], 3) == [LR, LR * RATIO]


@pytest.mark.parametrize(
    ("epoch", "frequency", "message"), [(1, 0, "decay_frequency"), (-1, 3, "epoch")]
)
def test_schedule_arguments_are_validated(epoch, frequency, message):
    with pytest.raises(ValueError, match=message):
        lr_for_epoch(LR, epoch, frequency)


def test_adjust_needs_one_base_lr_per_group():
    optimizer = build_optimizer(_meta("vgg16", "cam"), LR)
    with pytest.raises(ValueError, match="one base lr per parameter group"):
        adjust_learning_rate(optimizer, 1, [LR], 3)
