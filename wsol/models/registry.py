"""Model registry and :func:`build_model` for both families (SPEC §3.1).

``MODELS[family][architecture]`` is the class to build; ``ARCHITECTURES``, ``FAMILIES``,
``MODEL_STRUCTURES`` and ``BRANCH_INITS`` are meant as argparse ``choices``.
"""

from __future__ import annotations

import torch

from wsol.models.base import MODEL_STRUCTURES, DualBranchModel
from wsol.models.inception import InceptionV3CAM, InceptionV3Grad
from wsol.models.resnet import ResNet50CAM, ResNet50Grad
from wsol.models.vgg import VGG16CAM, VGG16Grad

__all__ = [
    "ARCHITECTURES",
    "BRANCH_INITS",
    "FAMILIES",
    "MODELS",
    "MODEL_STRUCTURES",
    "DualBranchModel",
    "build_model",
    "clone_branch",
    "family_for_method",
]

MODELS: dict[str, dict[str, type[DualBranchModel]]] = {
    "cam": {"vgg16": VGG16CAM, "resnet50": ResNet50CAM, "inception_v3": InceptionV3CAM},
    "grad": {"vgg16": VGG16Grad, "resnet50": ResNet50Grad, "inception_v3": InceptionV3Grad},
}
FAMILIES = tuple(MODELS)
ARCHITECTURES = tuple(MODELS["cam"])
BRANCH_INITS = ("random", "clone")


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
        architecture: one of :data:`ARCHITECTURES`.
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
    if family not in MODELS:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    if architecture not in MODELS[family]:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    if branch_init not in BRANCH_INITS:
        raise ValueError(f"branch_init must be one of {BRANCH_INITS}, got {branch_init!r}")
    if branch_init == "clone" and model_structure != "b2":
        raise ValueError("branch_init='clone' needs model_structure='b2'")
    model = MODELS[family][architecture](
        num_classes, model_structure=model_structure, large_feature_map=large_feature_map
    )
    model.branch_init = branch_init
    if branch_init == "clone":
        clone_branch(model)
    return model
