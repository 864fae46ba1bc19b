"""--unfreeze_layer names and BatchNorm modes (SPEC §3.11, A6, D9)."""

import pytest
import torch
from torch import nn

from wsol.models.freezing import (
    BN_MODES,
    apply_freezing,
    set_train_mode,
    trainable_parameter_names,
    unfreeze_choices,
)
from wsol.models.registry import ARCHITECTURES, FAMILIES, build_model


def _head(name, indices=None):
    layers = [f"{name}.{index}" for index in indices] if indices else [name]
    return {f"{layer}.{kind}" for layer in layers for kind in ("weight", "bias")}


# (architecture, family) -> accepted name on a b2 model -> parameters it leaves trainable
EXPECTED = {
    ("vgg16", "cam"): {"fc": _head("fc"), "fc2": _head("fc2"), "branch2": _head("fc2")},
    ("resnet50", "cam"): {"fc": _head("fc"), "fc2": _head("fc2"), "branch2": _head("fc2")},
    ("resnet50", "grad"): {"fc": _head("fc"), "fc2": _head("fc2"), "branch2": _head("fc2")},
    ("inception_v3", "cam"): {
        "SPG_A4": _head("SPG_A4"),
        "SPG_A4_2": _head("SPG_A4_2"),
        "branch2": _head("SPG_A4_2"),
    },
    ("vgg16", "grad"): {
        "classifier": _head("classifier", (0, 3, 6)),
        "classifier_2": _head("classifier_2", (0, 3, 6)),
        "branch2": _head("classifier_2", (0, 3, 6)),
    },
    # unlike the authors' prefix match, "fc" does not also unfreeze "fc2"
    ("inception_v3", "grad"): {"fc": _head("fc"), "fc2": _head("fc2"), "branch2": _head("fc2")},
}


def _meta(architecture, family, structure="b2"):
    with torch.device("meta"):
        return build_model(architecture, family, 5, model_structure=structure)


@pytest.mark.parametrize(("architecture", "family"), list(EXPECTED))
def test_each_accepted_name_unfreezes_exactly_its_head(architecture, family):
    model = _meta(architecture, family)
    assert set(unfreeze_choices(model)) == set(EXPECTED[(architecture, family)]) | {"all"}
    for name, expected in EXPECTED[(architecture, family)].items():
        assert set(apply_freezing(model, name)) == expected, name
        assert set(trainable_parameter_names(model)) == expected
    everything = {name for name, _ in model.named_parameters()}
    assert set(apply_freezing(model, "all")) == everything


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_vanilla_models_accept_head1_and_all_only(architecture, family):
    model = _meta(architecture, family, "vanilla")
    head1 = model.head_names[0]
    assert unfreeze_choices(model) == (head1, "all")
    for name in (model.head_names[1], "branch2"):
        with pytest.raises(ValueError, match="choose one of"):
            apply_freezing(model, name)


@pytest.mark.parametrize("name", ["none", "conv", "conv2", "layer4", "FC2", ""])
def test_unknown_names_are_rejected_with_the_allowed_values(name):
    model = _meta("resnet50", "cam")
    with pytest.raises(ValueError, match=r"choose one of \('fc', 'fc2', 'branch2', 'all'\)"):
        apply_freezing(model, name)


def test_names_of_another_model_are_rejected():
    with pytest.raises(ValueError, match="SPG_A4_2"):
        apply_freezing(_meta("inception_v3", "cam"), "fc2")
    with pytest.raises(ValueError, match="classifier_2"):
        apply_freezing(_meta("vgg16", "grad"), "fc2")


def test_wrapped_model_is_unwrapped():
    model = _meta("resnet50", "cam")
    assert apply_freezing(nn.DataParallel(model), "branch2") == ["fc2.weight", "fc2.bias"]


def _resnet():
    torch.manual_seed(0)
    model = build_model("resnet50", "cam", 5, model_structure="b2")
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model


def _buffers(model):
    return {key: value.clone() for key, value in model.named_buffers()}


def _step(model):
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    outputs = model(x)
    outputs["logits2"].sum().backward()
    optimizer.step()


def test_batch_stats_mode_uses_batch_statistics_and_keeps_buffers():
    model = _resnet()
    before = _buffers(model)
    fc, fc2 = model.fc.weight.clone(), model.fc2.weight.clone()
    set_train_mode(model, "fc2", "batch_stats")
    assert model.training
    assert model.bn1.training
    assert not model.bn1.track_running_stats
    _step(model)
    after = _buffers(model)
    assert all(torch.equal(before[key], after[key]) for key in before)
    assert torch.equal(model.fc.weight, fc)
    assert not torch.equal(model.fc2.weight, fc2)
    assert model.conv1.weight.grad is None

    x = torch.randn(2, 64, 8, 8)
    bn = model.layer1[0].bn1
    with torch.no_grad():
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        expected = (x - mean) / torch.sqrt(var + bn.eps)
        expected = expected * bn.weight[None, :, None, None] + bn.bias[None, :, None, None]
        torch.testing.assert_close(bn(x), expected, rtol=1e-4, atol=1e-5)
        model.eval()
        stored = (x - bn.running_mean[None, :, None, None]) / torch.sqrt(
            bn.running_var[None, :, None, None] + bn.eps
        )
        stored = stored * bn.weight[None, :, None, None] + bn.bias[None, :, None, None]
        torch.testing.assert_close(bn(x), stored, rtol=1e-4, atol=1e-5)


def test_frozen_eval_mode_keeps_bn_in_eval_and_dropout_in_train():
    model = build_model("inception_v3", "cam", 5, model_structure="b2")
    before = _buffers(model)
    set_train_mode(model, "branch2", "frozen_eval")
    batch_norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert model.training
    assert all(not m.training and m.track_running_stats for m in batch_norms)
    with torch.no_grad():
        model(torch.randn(2, 3, 96, 96))
    after = _buffers(model)
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_all_trains_batchnorm_normally_even_after_batch_stats():
    model = _resnet()
    set_train_mode(model, "fc2", "batch_stats")
    set_train_mode(model, "all", "batch_stats")
    assert model.bn1.track_running_stats
    assert all(p.requires_grad for p in model.parameters())
    before = _buffers(model)
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))
    after = _buffers(model)
    assert after["bn1.num_batches_tracked"] == before["bn1.num_batches_tracked"] + 1
    assert not torch.equal(after["bn1.running_mean"], before["bn1.running_mean"])


def test_bn_mode_is_validated():
    assert BN_MODES == ("batch_stats", "frozen_eval")
    with pytest.raises(ValueError, match="bn_mode"):
        set_train_mode(_meta("resnet50", "cam"), "fc2", "eval")
