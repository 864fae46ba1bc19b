"""Weights in and out: torchvision ImageNet weights, fine-tuning checkpoints, training checkpoints.

* :func:`load_torchvision_weights`: torchvision's ImageNet files mapped onto either family with
  the key rules of SPEC §3.9 (including the VGG16 re-indexing for the 28x28 layout). Files are
  read from a given path or from torch's hub cache; nothing is downloaded unless asked.
* :func:`load_finetune_checkpoint`: the vanilla checkpoint a b2 model starts from (SPEC §3.10).
* :func:`load_model_checkpoint` / :func:`load_model_state`: strict loading for evaluation/resume.
* :func:`save_checkpoint` / :func:`load_training_checkpoint`: atomic save, safe load.

Every file is read with ``map_location="cpu"`` and ``weights_only=True``. Before any tensor is
copied, the checkpoint is compared with the model and a wrong architecture, family,
``num_classes``, ``model_structure`` or VGG feature layout is reported as a
:class:`CheckpointMismatchError` that says which.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from wsol.models.base import DualBranchModel
from wsol.models.registry import clone_branch

__all__ = [
    "TORCHVISION_FILES",
    "CheckpointMismatchError",
    "CheckpointReadError",
    "LoadReport",
    "check_compatible",
    "extract_state_dict",
    "load_finetune_checkpoint",
    "load_model_checkpoint",
    "load_model_state",
    "load_torchvision_weights",
    "load_training_checkpoint",
    "save_checkpoint",
    "torchvision_weights_path",
]

logger = logging.getLogger(__name__)

# torchvision file names: the authors' first, then the current torchvision name of the same weights.
TORCHVISION_FILES: dict[str, tuple[str, ...]] = {
    "vgg16": ("vgg16-397923af.pth",),
    "resnet50": ("resnet50-19c8e357.pth", "resnet50-0676ba61.pth"),
    "inception_v3": ("inception_v3_google-1a9a5a14.pth", "inception_v3_google-0cc3c7bd.pth"),
}
# file names the authors' code expects inside a weights folder
_FOLDER_FILES: dict[str, tuple[str, ...]] = {
    "vgg16": ("vgg16.pth",),
    "resnet50": ("resnet50.pth",),
    "inception_v3": ("inception_v3.pth", "inceptionv3.pth"),
}
_DOWNLOAD_ROOT = "https://download.pytorch.org/models/"

# (architecture, family) -> (substrings always dropped, substrings dropped unless keep_head,
#                            prefixes of the model's layers that torchvision does not provide)
_Patterns = tuple[str, ...]
_TORCHVISION_RULES: dict[tuple[str, str], tuple[_Patterns, _Patterns, _Patterns]] = {
    ("vgg16", "cam"): (("classifier.",), (), ("conv6.", "fc.", "fc2.")),
    ("vgg16", "grad"): ((), ("classifier.",), ("classifier_2.",)),
    ("resnet50", "cam"): ((), ("fc",), ("fc2.",)),
    ("resnet50", "grad"): ((), ("fc",), ("fc2.",)),
    ("inception_v3", "cam"): (
        ("Mixed_7", "AuxLogits", "fc."),
        (),
        ("SPG_A3_1b.", "SPG_A3_2b.", "SPG_A4.", "SPG_A4_2."),
    ),
    ("inception_v3", "grad"): (("AuxLogits",), ("fc.",), ("fc2.",)),
}

_ARCHITECTURE_KEYS = {
    "vgg16": "features.0.weight",
    "resnet50": "layer1.0.conv1.weight",
    "inception_v3": "Mixed_5b.branch1x1.conv.weight",
}
_FAMILY_PREFIXES = {
    "vgg16": {"cam": "conv6.", "grad": "classifier."},
    "inception_v3": {"cam": "SPG_A", "grad": "Mixed_7"},
}
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_RENAMED_HEAD_MODES = ("fc", "conv")
_SHOWN = 5


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model it is loaded into; the message says why."""


class CheckpointReadError(ValueError):
    """A checkpoint file exists but cannot be read (empty, truncated or corrupt)."""


class LoadReport(NamedTuple):
    """Keys of the model absent from the checkpoint, and checkpoint keys the model lacks."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _torch_load(path: str | os.PathLike) -> object:
    """``torch.load`` on the CPU with ``weights_only``; errors name the file.

    Raises:
        FileNotFoundError: the file does not exist.
        CheckpointReadError: the file is empty, truncated or not a torch file.
        pickle.UnpicklingError: the file holds objects that ``weights_only`` refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (EOFError, RuntimeError, OSError) as error:
        reason = str(error).split(". ")[0] or type(error).__name__
        raise CheckpointReadError(
            f"{path} is not a readable checkpoint (empty, truncated or corrupt file): {reason}"
        ) from error
    except pickle.UnpicklingError as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise pickle.UnpicklingError(f"{path}: {reason}") from error


def _strip_wrapper_prefixes(key: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix):], True
    return key


def extract_state_dict(checkpoint: object) -> dict[str, Tensor]:
    """The model state dict of a checkpoint, with leading ``module.``/``_orig_mod.`` removed.

    Accepts a bare state dict or a dict holding it under ``state_dict`` (the authors' and
    WSOL's checkpoints) or ``model`` (this project's training checkpoints).

    Raises:
        CheckpointMismatchError: if no state dict of tensors is found.
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointMismatchError(f"expected a dict, the checkpoint is a {type(checkpoint)}")
    for container in ("state_dict", "model"):
        if isinstance(checkpoint.get(container), Mapping):
            checkpoint = checkpoint[container]
            break
    state = {}
    for key, value in checkpoint.items():
        if not isinstance(value, Tensor):
            raise CheckpointMismatchError(
                f"entry {key!r} is a {type(value).__name__}, not a tensor: no model state dict "
                f"found"
            )
        state[_strip_wrapper_prefixes(key)] = value
    return state


def _shorten(keys: list[str]) -> str:
    more = f" (+{len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def _detect_architecture(state: Mapping[str, Tensor]) -> str | None:
    return next((arch for arch, key in _ARCHITECTURE_KEYS.items() if key in state), None)


def _vgg_feature_indices(keys: Iterable[str]) -> set[int]:
    return {int(key.split(".")[1]) for key in keys if key.startswith("features.")}


def _vgg_layout(indices: set[int]) -> str:
    return "28x28 (large_feature_map=True)" if 27 in indices else "14x14 (large_feature_map=False)"


def _check_identity(model: DualBranchModel, state: Mapping[str, Tensor]) -> None:
    architecture = _detect_architecture(state)
    if architecture is None:
        raise CheckpointMismatchError(
            f"the checkpoint holds no VGG16, ResNet50 or InceptionV3 backbone; its first keys are "
            f"{_shorten(list(state))}"
        )
    if architecture != model.architecture:
        raise CheckpointMismatchError(
            f"architecture mismatch: the checkpoint holds a {architecture} model, the model "
            f"being loaded is {model.architecture}"
        )
    families = _FAMILY_PREFIXES.get(architecture, {})
    family = next(
        (name for name, prefix in families.items() if any(key.startswith(prefix) for key in state)),
        None,
    )
    if family is not None and family != model.family:
        raise CheckpointMismatchError(
            f"family mismatch: the checkpoint holds a {family}-family {architecture}, the model is "
            f"{model.family}-family (method 'cam' uses the CAM family, the gradient methods the "
            f"grad family)"
        )
    if architecture == "vgg16":
        found = _vgg_feature_indices(state)
        expected = _vgg_feature_indices(model.state_dict())
        if found != expected:
            raise CheckpointMismatchError(
                f"VGG16 feature layout mismatch: the checkpoint uses {_vgg_layout(found)}, the "
                f"model {_vgg_layout(expected)}"
            )


def _check_heads(
    model: DualBranchModel, state: Mapping[str, Tensor], require_branch2: bool
) -> None:
    head1, head2 = model.head_names
    output_key = f"{model.output_layer_name(1)}.weight"
    output_key2 = head2 + output_key[len(head1):]
    for key in (output_key, output_key2):
        if key in state and state[key].shape[0] != model.num_classes:
            raise CheckpointMismatchError(
                f"num_classes mismatch: the checkpoint has {state[key].shape[0]} classes ({key} "
                f"{tuple(state[key].shape)}), the model was built with num_classes="
                f"{model.num_classes}"
            )
    has_branch2 = any(key.startswith(f"{head2}.") for key in state)
    if has_branch2 and not model.has_branch2:
        raise CheckpointMismatchError(
            f"model_structure mismatch: the checkpoint has the sigmoid branch '{head2}' (trained "
            f"with model_structure=b2), the model is vanilla"
        )
    if require_branch2 and model.has_branch2 and not has_branch2:
        raise CheckpointMismatchError(
            f"model_structure mismatch: the checkpoint has no sigmoid branch '{head2}' (a vanilla "
            f"checkpoint), the model is b2; load it as the fine-tuning checkpoint instead"
        )


def _check_shapes(model: DualBranchModel, state: Mapping[str, Tensor]) -> None:
    model_state = model.state_dict()
    mismatched = [
        f"{key} {tuple(value.shape)} vs model {tuple(model_state[key].shape)}"
        for key, value in state.items()
        if key in model_state and value.shape != model_state[key].shape
    ]
    if mismatched:
        raise CheckpointMismatchError(
            f"{len(mismatched)} tensors differ in shape from the model: {_shorten(mismatched)}"
        )


def check_compatible(
    model: DualBranchModel, state: Mapping[str, Tensor], *, require_branch2: bool
) -> None:
    """Compare a state dict with a model before loading it.

    Checks, in this order: architecture, family, VGG16 feature layout, ``num_classes``,
    ``model_structure`` (a b2 checkpoint into a vanilla model; with ``require_branch2`` also a
    vanilla checkpoint into a b2 model), then every remaining shape.

    Raises:
        CheckpointMismatchError: naming the first mismatch found.
    """
    _check_identity(model, state)
    _check_heads(model, state, require_branch2)
    _check_shapes(model, state)


def _key_differences(model: DualBranchModel, state: Mapping[str, Tensor]) -> LoadReport:
    model_keys = model.state_dict().keys()
    return LoadReport(
        missing_keys=[key for key in model_keys if key not in state],
        unexpected_keys=[key for key in state if key not in model_keys],
    )


def _log_report(source: str, report: LoadReport) -> None:
    logger.log(
        logging.WARNING if report.unexpected_keys else logging.INFO,
        "loaded %s: %d missing keys%s, %d unexpected keys%s",
        source,
        len(report.missing_keys),
        f" ({_shorten(report.missing_keys)})" if report.missing_keys else "",
        len(report.unexpected_keys),
        f" ({_shorten(report.unexpected_keys)})" if report.unexpected_keys else "",
    )


def _clone_if_requested(model: DualBranchModel, report: LoadReport) -> None:
    prefix = f"{model.head_names[1]}."
    if model.branch_init == "clone" and any(key.startswith(prefix) for key in report.missing_keys):
        clone_branch(model)
        logger.info("branch_init=clone: head '%s' copied into '%s'", *model.head_names)


def load_model_state(
    model: DualBranchModel, checkpoint: Mapping[str, Any], *, strict: bool = True
) -> LoadReport:
    """Load a state dict (or a checkpoint holding one) after :func:`check_compatible`.

    Args:
        model: the model to fill.
        checkpoint: a state dict or a checkpoint dict (see :func:`extract_state_dict`).
        strict: every key must match (evaluation, resume); otherwise missing and unexpected keys
            are allowed and logged.

    Returns:
        The missing and unexpected keys.

    Raises:
        CheckpointMismatchError: if the checkpoint does not fit the model.
    """
    state = extract_state_dict(checkpoint)
    check_compatible(model, state, require_branch2=strict)
    report = _key_differences(model, state)
    if strict and (report.missing_keys or report.unexpected_keys):
        raise CheckpointMismatchError(
            f"strict load failed: missing keys [{_shorten(report.missing_keys)}], unexpected "
            f"keys [{_shorten(report.unexpected_keys)}]"
        )
    model.load_state_dict(state, strict=strict)
    return report


def load_model_checkpoint(model: DualBranchModel, path: str | os.PathLike) -> LoadReport:
    """Strictly load a checkpoint file of this very model (evaluation of a trained model).

    Raises:
        FileNotFoundError: if the file does not exist.
        CheckpointReadError: if the file is empty, truncated or corrupt.
        CheckpointMismatchError: if the checkpoint does not fit the model.
    """
    report = load_model_state(model, _torch_load(path), strict=True)
    _log_report(str(path), report)
    return report


def load_finetune_checkpoint(
    model: DualBranchModel, path: str | os.PathLike, *, unfreeze_layer: str | None = None
) -> LoadReport:
    """Load the checkpoint a model is fine-tuned from (``--ft_ckpt``, SPEC §3.10), non-strictly.

    Typically a vanilla checkpoint (the authors' or WSOL's) loaded into a b2 model: head 2 is then
    missing and keeps its initialisation, or is cloned from head 1 when the model was built with
    ``branch_init="clone"``. For VGG16-CAM and ResNet50-CAM with ``unfreeze_layer`` ``fc`` or
    ``conv``, the checkpoint's ``fc.*`` go into ``fc2.*`` and head 1 keeps its initialisation
    (the authors' alternative mode). Missing and unexpected keys are logged and returned.

    Raises:
        FileNotFoundError: if the file does not exist.
        CheckpointReadError: if the file is empty, truncated or corrupt.
        CheckpointMismatchError: if the checkpoint does not fit the model.
    """
    state = extract_state_dict(_torch_load(path))
    renames_head = (
        model.family == "cam"
        and model.architecture in ("vgg16", "resnet50")
        and unfreeze_layer in _RENAMED_HEAD_MODES
    )
    if renames_head:
        if not model.has_branch2:
            raise CheckpointMismatchError(
                f"unfreeze_layer {unfreeze_layer!r} loads the checkpoint's 'fc' into 'fc2', "
                f"which needs model_structure=b2"
            )
        state = {
            (f"fc2.{key[3:]}" if key.startswith("fc.") else key): value
            for key, value in state.items()
        }
    report = load_model_state(model, state, strict=False)
    _log_report(str(path), report)
    _clone_if_requested(model, report)
    return report


def torchvision_weights_path(
    architecture: str, path: str | os.PathLike | None = None, *, download: bool = False
) -> Path:
    """Locate torchvision's ImageNet weights for ``architecture``.

    Args:
        architecture: ``vgg16``, ``resnet50`` or ``inception_v3``.
        path: a weights file, or a folder holding the authors' names (``vgg16.pth``,
            ``resnet50.pth``, ``inception_v3.pth``) or torchvision's. None: torch's hub cache,
            ``torch.hub.get_dir()/checkpoints/<torchvision file name>``.
        download: when ``path`` is None and the file is not cached, download it into the cache.

    Returns:
        The path of an existing file.

    Raises:
        ValueError: for an unknown architecture.
        FileNotFoundError: if no file is found (and no download was asked for).
    """
    if architecture not in TORCHVISION_FILES:
        raise ValueError(
            f"architecture must be one of {tuple(TORCHVISION_FILES)}, got {architecture!r}"
        )
    names = TORCHVISION_FILES[architecture]
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    if path is None:
        candidates = [cache / name for name in names]
    elif Path(path).is_dir():
        candidates = [Path(path) / name for name in _FOLDER_FILES[architecture] + names]
    else:
        candidates = [Path(path)]
    found = next((candidate for candidate in candidates if candidate.is_file()), None)
    if found is not None:
        return found
    url = _DOWNLOAD_ROOT + names[0]
    if download and path is None:
        candidates[0].parent.mkdir(parents=True, exist_ok=True)
        hash_prefix = names[0].rsplit("-", 1)[1].split(".")[0]
        torch.hub.download_url_to_file(url, str(candidates[0]), hash_prefix=hash_prefix)
        return candidates[0]
    raise FileNotFoundError(
        f"ImageNet weights for {architecture} not found at {', '.join(map(str, candidates))}. "
        f"Download {url} into {cache}, or pass the file's path, or allow the download "
        f"(download=True)."
    )


def _reindex_vgg_features(state: dict[str, Tensor], model: DualBranchModel) -> dict[str, Tensor]:
    """Pair torchvision's conv indices with the model's, both sorted descending (SPEC §3.9)."""
    source = sorted(_vgg_feature_indices(state), reverse=True)
    target = sorted(_vgg_feature_indices(model.state_dict()), reverse=True)
    if len(source) != len(target):
        raise CheckpointMismatchError(
            f"the weights have {len(source)} convolutions in 'features', VGG16 has {len(target)}: "
            f"not torchvision's VGG16"
        )
    mapping = dict(zip(source, target, strict=True))
    renamed = {}
    for key, value in state.items():
        if key.startswith("features."):
            _, index, rest = key.split(".", 2)
            key = f"features.{mapping[int(index)]}.{rest}"
        renamed[key] = value
    return renamed


def load_torchvision_weights(
    model: DualBranchModel,
    path: str | os.PathLike | None = None,
    *,
    keep_head: bool = False,
    download: bool = False,
) -> LoadReport:
    """Initialise a model from torchvision's ImageNet weights with the rules of SPEC §3.9.

    Keys are dropped per model (VGG16-CAM: ``classifier.``; InceptionV3-CAM: ``Mixed_7``,
    ``AuxLogits``, ``fc.``; InceptionV3 grad: ``AuxLogits``), VGG16 conv indices are re-paired
    for the 28x28 layout, and the remaining tensors are loaded; layers torchvision lacks
    (``conv6``, the SPG layers, head 2, ...) keep their initialisation.

    Args:
        model: the model to fill.
        path: see :func:`torchvision_weights_path`.
        keep_head: also load torchvision's 1000-class head into head 1 (ILSVRC) for the models
            that have one (VGG16 grad, ResNet50, InceptionV3 grad); ignored for VGG16-CAM and
            InceptionV3-CAM, whose heads are new.
        download: see :func:`torchvision_weights_path`.

    Returns:
        The missing and unexpected keys (the latter always empty).

    Raises:
        FileNotFoundError: if the weights file is not found.
        CheckpointMismatchError: if the file is not the expected torchvision model, or
            ``keep_head`` is set while ``num_classes`` is not 1000.
    """
    drop_always, drop_unless_head, new_layers = _TORCHVISION_RULES[
        (model.architecture, model.family)
    ]
    if keep_head and drop_unless_head and model.num_classes != 1000:
        raise CheckpointMismatchError(
            f"keep_head loads torchvision's 1000-class head; the model has num_classes="
            f"{model.num_classes}"
        )
    file = torchvision_weights_path(model.architecture, path, download=download)
    dropped = drop_always + (() if keep_head else drop_unless_head)
    state = {
        key: value
        for key, value in extract_state_dict(_torch_load(file)).items()
        if not any(pattern in key for pattern in dropped)
    }
    if _detect_architecture(state) != model.architecture:
        raise CheckpointMismatchError(
            f"{file} does not hold torchvision {model.architecture} weights"
        )
    if model.architecture == "vgg16":
        state = _reindex_vgg_features(state, model)
    _check_shapes(model, state)
    report = _key_differences(model, state)
    allowed_missing = new_layers if keep_head else (*new_layers, f"{model.head_names[0]}.")
    unexplained = [key for key in report.missing_keys if not key.startswith(allowed_missing)]
    if report.unexpected_keys or unexplained:
        raise CheckpointMismatchError(
            f"{file} does not fit {model.architecture} ({model.family} family): missing "
            f"[{_shorten(unexplained)}], unexpected [{_shorten(report.unexpected_keys)}]"
        )
    model.load_state_dict(state, strict=False)
    _log_report(str(file), report)
    _clone_if_requested(model, report)
    return report


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Save ``state`` atomically: write ``<path>.tmp`` in the same folder, fsync, rename.

    ``state`` should hold only tensors, containers and plain Python values (config as a plain
    dict) so that :func:`load_training_checkpoint` can read it with ``weights_only=True``.

    Returns:
        The final path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp")
    try:
        with open(tmp, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_training_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (CPU tensors, ``weights_only``).

    Raises:
        FileNotFoundError: if the file does not exist.
        CheckpointReadError: if the file is empty, truncated or corrupt.
        ValueError: if the file does not hold a dict.
    """
    checkpoint = _torch_load(path)
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} holds a {type(checkpoint).__name__}, not a checkpoint dict")
    return checkpoint
