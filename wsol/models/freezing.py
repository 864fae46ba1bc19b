"""``--unfreeze_layer`` and the BatchNorm behaviour of fine-tuning (SPEC §3.11, A6, D9).

Accepted names, per model:

* the authors' names, i.e. the model's own head names: ``fc``/``fc2`` (VGG16-CAM, ResNet50,
  InceptionV3 grad family), ``SPG_A4``/``SPG_A4_2`` (InceptionV3-CAM), ``classifier``/
  ``classifier_2`` (VGG16 grad family) — the head-2 name only on a b2 model;
* ``branch2``: the sigmoid head on every architecture (b2 only);
* ``all``: nothing frozen, ordinary training (BatchNorm updates its running statistics).

A name unfreezes exactly the parameters of that head. Unlike the authors' code, ``fc`` on the
grad-family InceptionV3 does not also unfreeze ``fc2`` (their prefix match did), and the broken
``conv``/``conv2`` heads (D8) do not exist. Any other name, including the authors' default
``none``, is a ValueError listing the accepted values instead of silently freezing everything.
"""

from __future__ import annotations

from torch import nn

from wsol.engine.runtime import unwrap_model
from wsol.models.base import DualBranchModel

__all__ = [
    "BN_MODES",
    "apply_freezing",
    "set_train_mode",
    "trainable_parameter_names",
    "unfreeze_choices",
    "unfreeze_names",
]

BN_MODES = ("batch_stats", "frozen_eval")
_ALL = "all"
_BRANCH2 = "branch2"
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def _unwrap(model: nn.Module) -> DualBranchModel:
    model = unwrap_model(model)
    if not isinstance(model, DualBranchModel):
        raise TypeError(f"expected a wsol model, got {type(model).__name__}")
    return model


def unfreeze_choices(model: nn.Module) -> tuple[str, ...]:
    """The ``unfreeze_layer`` values this model accepts."""
    model = _unwrap(model)
    return unfreeze_names(model.head_names, model.has_branch2)


def unfreeze_names(head_names: tuple[str, str], has_branch2: bool) -> tuple[str, ...]:
    """The ``unfreeze_layer`` values of a model with these head names (no model needed)."""
    heads = head_names if has_branch2 else head_names[:1]
    generic = (_BRANCH2, _ALL) if has_branch2 else (_ALL,)
    return heads + generic


def _trainable_module(model: DualBranchModel, unfreeze_layer: str) -> str | None:
    """Head name to train for ``unfreeze_layer``, None for ``all``."""
    choices = unfreeze_choices(model)
    if unfreeze_layer not in choices:
        raise ValueError(
            f"unfreeze_layer {unfreeze_layer!r} is not valid for {model.architecture} "
            f"({model.family} family, {model.model_structure}); choose one of {choices}"
        )
    if unfreeze_layer == _ALL:
        return None
    return model.head_names[1] if unfreeze_layer == _BRANCH2 else unfreeze_layer


def apply_freezing(model: nn.Module, unfreeze_layer: str) -> list[str]:
    """Set ``requires_grad`` so that only the chosen head trains (everything for ``all``).

    Args:
        model: a wsol model, possibly wrapped in (Distributed)DataParallel.
        unfreeze_layer: one of :func:`unfreeze_choices`.

    Returns:
        Names of the trainable parameters, relative to the unwrapped model.

    Raises:
        ValueError: if ``unfreeze_layer`` is not accepted by this model.
    """
    inner = _unwrap(model)
    head = _trainable_module(inner, unfreeze_layer)
    prefix = f"{head}."
    for name, param in inner.named_parameters():
        param.requires_grad_(head is None or name.startswith(prefix))
    return trainable_parameter_names(inner)


def trainable_parameter_names(model: nn.Module) -> list[str]:
    """Names of the parameters with ``requires_grad``."""
    return [name for name, param in model.named_parameters() if param.requires_grad]


def set_train_mode(model: nn.Module, unfreeze_layer: str, bn_mode: str = "batch_stats") -> None:
    """Put the model in fine-tuning mode; the trainer calls it instead of ``model.train()``.

    Re-applies :func:`apply_freezing`, then ``model.train()`` (dropout active). With a frozen
    backbone (``unfreeze_layer != "all"``) BatchNorm then behaves as ``bn_mode`` says:

    * ``batch_stats`` (default, parity with the authors' code, SPEC A6): BN normalises with the
      statistics of the current mini-batch and leaves ``running_mean``, ``running_var`` and
      ``num_batches_tracked`` untouched (``track_running_stats`` is switched off while training;
      in eval mode BN still uses the stored buffers);
    * ``frozen_eval``: BN modules stay in eval mode and normalise with the running statistics.

    With ``all``, BN trains normally and updates its running statistics.

    Raises:
        ValueError: for an unknown ``unfreeze_layer`` or ``bn_mode``.
    """
    if bn_mode not in BN_MODES:
        raise ValueError(f"bn_mode must be one of {BN_MODES}, got {bn_mode!r}")
    apply_freezing(model, unfreeze_layer)
    model.train()
    frozen = unfreeze_layer != _ALL
    for module in model.modules():
        if isinstance(module, _BATCH_NORMS) and module.running_mean is not None:
            module.track_running_stats = not (frozen and bn_mode == "batch_stats")
            if frozen and bn_mode == "frozen_eval":
                module.eval()
