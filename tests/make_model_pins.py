"""Write the pins of tests/test_model_pins.py: seeded paper models, their outputs and groups.

The pins were taken once, before the backbone registry was introduced, so that the test shows the
redesign left every paper backbone unchanged. To re-take them (only on purpose, e.g. after a torch
upgrade), run from the repository root of the commit whose models are the reference:

    python tests/make_model_pins.py tests/fixtures/model_pins
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NUM_CLASSES = 3
INPUT_SIZE = 96
PAPER_MODELS = [(architecture, family, structure)
                for architecture in ("vgg16", "resnet50", "inception_v3")
                for family in ("cam", "grad") for structure in ("vanilla", "b2")]


def pin_name(architecture: str, family: str, structure: str) -> str:
    """File stem of one model's pins."""
    return f"{architecture}_{family}_{structure}"


def state_digest(model: torch.nn.Module) -> str:
    """SHA-256 over every state-dict entry's name, dtype, shape and bytes, in order."""
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        tensor = value.detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes() if tensor.dtype != torch.bfloat16 else b"")
    return digest.hexdigest()


def pinned_input() -> torch.Tensor:
    """The fixed input batch the outputs are pinned on."""
    generator = torch.Generator().manual_seed(1)
    return torch.randn(2, 3, INPUT_SIZE, INPUT_SIZE, generator=generator)


def build_seeded(build_model, architecture: str, family: str, structure: str) -> torch.nn.Module:
    """The model as built under seed 0, in eval mode."""
    torch.manual_seed(0)
    model = build_model(architecture, family, NUM_CLASSES, model_structure=structure)
    return model.eval()


def outputs(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """Every tensor of ``forward`` (with the CAMs for the CAM family) as float32 arrays."""
    with torch.no_grad():
        result = model(pinned_input(), return_cam=model.family == "cam")
    return {key: value.numpy() for key, value in result.items()}


def main(folder: str) -> None:
    """Write ``{name}.npz`` (outputs) and ``pins.json`` (keys, digests, groups) into ``folder``."""
    from wsol.engine.optim import param_groups
    from wsol.models.freezing import apply_freezing, unfreeze_choices
    from wsol.models.registry import build_model

    torch.set_num_threads(1)
    os.makedirs(folder, exist_ok=True)
    pins = {}
    for architecture, family, structure in PAPER_MODELS:
        model = build_seeded(build_model, architecture, family, structure)
        name = pin_name(architecture, family, structure)
        np.savez_compressed(os.path.join(folder, name + ".npz"), **outputs(model))
        names = {id(param): key for key, param in model.named_parameters()}
        groups = [[names[id(param)] for param in group["params"]]
                  for group in param_groups(model, 1.0, 10.0)]
        trainable = {}
        for choice in unfreeze_choices(model):
            trainable[choice] = apply_freezing(model, choice)
        pins[name] = {"state_dict_keys": list(model.state_dict()), "digest": state_digest(model),
                      "param_groups": groups, "trainable": trainable}
        print(name, pins[name]["digest"][:12], flush=True)
    with open(os.path.join(folder, "pins.json"), "w", encoding="utf-8") as handle:
        json.dump(pins, handle, indent=1)
        handle.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
