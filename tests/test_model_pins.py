"""The paper backbones are unchanged by the registry: pinned keys, weights, outputs and groups.

The pins in tests/fixtures/model_pins were taken with tests/make_model_pins.py before the backbone
registry existed (torch 2.14.1, CPU, one thread). Weights are compared by SHA-256 digest and
outputs bit for bit; trainable parameters and optimizer groups by name for every
``--unfreeze_layer`` the model accepts.
"""

import json
import os

import numpy as np
import pytest
from make_model_pins import PAPER_MODELS, build_seeded, outputs, pin_name, state_digest

from wsol.engine.optim import param_groups
from wsol.models.freezing import apply_freezing, unfreeze_choices
from wsol.models.registry import build_model

PINS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "model_pins")

with open(os.path.join(PINS, "pins.json"), encoding="utf-8") as _handle:
    EXPECTED = json.load(_handle)


@pytest.mark.parametrize("architecture, family, structure", PAPER_MODELS)
def test_paper_model_is_pinned(architecture: str, family: str, structure: str) -> None:
    name = pin_name(architecture, family, structure)
    expected = EXPECTED[name]
    model = build_seeded(build_model, architecture, family, structure)
    assert list(model.state_dict()) == expected["state_dict_keys"]
    assert state_digest(model) == expected["digest"]
    with np.load(os.path.join(PINS, name + ".npz")) as pinned:
        produced = outputs(model)
        assert sorted(produced) == sorted(pinned.files)
        for key in pinned.files:
            assert np.array_equal(produced[key], pinned[key]), key
    names = {id(param): key for key, param in model.named_parameters()}
    groups = [[names[id(param)] for param in group["params"]]
              for group in param_groups(model, 1.0, 10.0)]
    assert groups == expected["param_groups"]
    assert list(unfreeze_choices(model)) == list(expected["trainable"])
    for choice, trainable in expected["trainable"].items():
        assert apply_freezing(model, choice) == trainable, choice
