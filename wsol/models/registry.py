"""The backbone registry and :func:`build_model` (SPEC §3.1).

Every backbone file declares a :class:`~wsol.models.spec.BackboneSpec`; :data:`BACKBONES` lists
them, one line each. Names of the form ``<prefix>:<name>`` are resolved by a registered resolver
(``torchvision:<name>`` wraps a torchvision classifier). Everything that depends on the backbone
(argparse choices, checkpoint loading, optimizer groups, result tables) reads it from here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from wsol.models import adapter, inception, resnet, tiny, vgg
from wsol.models.base import MODEL_STRUCTURES, DualBranchModel
from wsol.models.spec import BackboneSpec

__all__ = [
    "ARCHITECTURES",
    "BACKBONES",
    "BRANCH_INITS",
    "FAMILIES",
    "MODEL_STRUCTURES",
    "DualBranchModel",
    "architecture_help",
    "build_model",
    "clone_branch",
    "family_for_method",
    "get_backbone",
    "register_resolver",
]

BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec for spec in (vgg.SPEC, resnet.SPEC, inception.SPEC, tiny.SPEC)
}
ARCHITECTURES = tuple(BACKBONES)  # the built-in backbones; BACKBONES also holds later additions
FAMILIES = ("cam", "grad")
BRANCH_INITS = ("random", "clone")
_RESOLVERS: dict[str, Callable[[str], BackboneSpec]] = {}


def register_resolver(prefix: str, resolve: Callable[[str], BackboneSpec]) -> None:
    """Resolve architecture names ``{prefix}:{name}`` with ``resolve(name)``."""
    _RESOLVERS[prefix] = resolve


register_resolver(adapter.PREFIX, adapter.resolve_torchvision)


def get_backbone(architecture: str) -> BackboneSpec:
    """The spec of a registered name or of a ``prefix:name`` a resolver knows.

    Raises:
        ValueError: for an unknown name, listing the accepted ones.
    """
    if architecture in BACKBONES:
        return BACKBONES[architecture]
    prefix, _, name = architecture.partition(":")
    if name and prefix in _RESOLVERS:
        return _RESOLVERS[prefix](name)
    raise ValueError(f"unknown architecture {architecture!r}; choose one of {architecture_help()}")


def architecture_help() -> str:
    """The accepted ``--architecture`` values, for messages and ``--help``."""
    prefixes = [f"{prefix}:<name>" for prefix in _RESOLVERS]
    return ", ".join([*BACKBONES, *prefixes])


def family_for_method(method: str) -> str:
    """Model family a heatmap method runs on: ``cam`` → CAM family, any gradient method → grad."""
    return "cam" if method == "cam" else "grad"


def clone_branch(model: DualBranchModel) -> None:
    """Copy head 1 (weights and bias) into head 2, the paper's "clone" initialisation (SPEC A1).

    Call it after the vanilla checkpoint is loaded; the checkpoint loaders of
    :mod:`wsol.models.checkpoints` do so themselves for a model built with ``branch_init="clone"``.

    Raises:
        ValueError: if the model is vanilla.
    """
    with torch.no_grad():
        model.head(2).load_state_dict(model.head(1).state_dict())


def build_model(
    architecture: str,
    family: str,
    num_classes: int,
    *,
    model_structure: str = "vanilla",
    large_feature_map: bool = False,
    branch_init: str = "random",
) -> DualBranchModel:
    """Build a model by name, initialised as SPEC §3.8.

    Args:
        architecture: a registered name (:data:`ARCHITECTURES`) or ``prefix:name``.
        family: ``cam`` or ``grad`` (see :func:`family_for_method`).
        num_classes: K.
        model_structure: ``vanilla`` (softmax head) or ``b2`` (plus the sigmoid head).
        large_feature_map: 28×28 feature maps at 224 (ignored by the grad-family InceptionV3).
        branch_init: ``random`` (head 2 keeps its own init, as the authors' code) or ``clone``
            (head 2 copies head 1; re-applied by the checkpoint loaders after loading).

    Returns:
        The model, in training mode, on the CPU.

    Raises:
        ValueError: for an unknown name or an invalid combination.
    """
    spec = get_backbone(architecture)
    if family not in spec.models:
        raise ValueError(f"family must be one of {spec.families} for {architecture}, "
                         f"got {family!r}")
    if branch_init not in BRANCH_INITS:
        raise ValueError(f"branch_init must be one of {BRANCH_INITS}, got {branch_init!r}")
    if branch_init == "clone" and model_structure != "b2":
        raise ValueError("branch_init='clone' needs model_structure='b2'")
    model = spec.models[family](
        num_classes, model_structure=model_structure, large_feature_map=large_feature_map
    )
    model.branch_init = branch_init
    if branch_init == "clone":
        clone_branch(model)
    return model
