"""Weights in and out: torchvision ImageNet weights, fine-tuning checkpoints, training checkpoints.

* :func:`load_torchvision_weights`: torchvision's ImageNet files mapped onto either family with
  the key rules of SPEC §3.9 (including the VGG16 re-indexing for the 28x28 layout). Files are
  read from a given path or from torch's hub cache; nothing is downloaded unless asked.
* :func:`load_finetune_checkpoint`: the vanilla checkpoint a b2 model starts from (SPEC §3.10).
* :func:`load_model_checkpoint` / :func:`load_model_state`: strict loading for evaluation/resume.
* :func:`model_from_checkpoint`: build the model a checkpoint records and load it strictly.
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
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from wsol.models.base import DualBranchModel
from wsol.models.registry import BACKBONES, build_model, clone_branch, get_backbone
from wsol.models.spec import CheckpointMismatchError

__all__ = [
    "CheckpointMismatchError",
    "CheckpointReadError",
    "LoadReport",
    "MODEL_SETTINGS",
    "check_compatible",
    "extract_state_dict",
    "load_finetune_checkpoint",
    "load_model_checkpoint",
    "load_model_state",
    "load_torchvision_weights",
    "load_training_checkpoint",
    "model_from_checkpoint",
    "recorded_model_settings",
    "save_checkpoint",
    "torchvision_weights_path",
]

logger = logging.getLogger(__name__)

_DOWNLOAD_ROOT = "https://download.pytorch.org/models/"
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_SHOWN = 5


class CheckpointReadError(ValueError):
    """A checkpoint file exists but cannot be read (empty, truncated or corrupt)."""


class LoadReport(NamedTuple):
    """Keys of the model absent from the checkpoint, and checkpoint keys the model lacks."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _torch_load(path: str | os.PathLike) -> object:
    """``torch.load`` on the CPU with ``weights_only``; every failure is one line naming the file.

    The first bytes are checked before ``torch.load`` runs, so a file that is no PyTorch file at
    all (an HTML error page saved as ``.pth``, a NumPy array, text) is named for what it is.

    Raises:
        FileNotFoundError: the file does not exist.
        CheckpointReadError: the file is empty, not a PyTorch file, truncated or corrupt, or
            holds Python objects that ``weights_only`` does not unpickle (never unpickled).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    with open(path, "rb") as handle:
        head = handle.read(_HEAD_BYTES)
    problem = _not_a_torch_file(head)
    if problem is not None:
        raise CheckpointReadError(f"{path} is not a readable checkpoint: {problem}; expected a "
                                  f"file written by torch.save (a model state dict or a "
                                  f"training checkpoint such as last_checkpoint.pth.tar)")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointReadError(f"{path} is not a readable checkpoint: "
                                  f"{_unpickling_problem(str(error))}") from None
    except Exception as error:  # garbage after a valid header fails in many ways
        reason = str(error).split(". ")[0] or type(error).__name__
        raise CheckpointReadError(
            f"{path} is not a readable checkpoint (truncated or corrupt PyTorch file): {reason}"
        ) from None


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


def _detect_architectures(state: Mapping[str, Tensor]) -> list[str]:
    """Registered backbones whose signature key the state dict has."""
    return [name for name, spec in BACKBONES.items() if spec.signature_key in state]


def _check_identity(model: DualBranchModel, state: Mapping[str, Tensor]) -> None:
    spec = get_backbone(model.architecture)
    if spec.signature_key not in state:
        detected = _detect_architectures(state)
        if detected:
            raise CheckpointMismatchError(
                f"architecture mismatch: the checkpoint holds a {detected[0]} model, the model "
                f"being loaded is {model.architecture}"
            )
        raise CheckpointMismatchError(
            f"the checkpoint holds no {model.architecture} backbone (no key "
            f"{spec.signature_key!r}); its first keys are {_shorten(list(state))}"
        )
    family = next((name for name, prefix in spec.family_keys.items()
                   if any(key.startswith(prefix) for key in state)), None)
    if family is not None and family != model.family:
        raise CheckpointMismatchError(
            f"family mismatch: the checkpoint holds a {family}-family {model.architecture}, the "
            f"model is {model.family}-family (method 'cam' uses the CAM family, the gradient "
            f"methods the grad family)"
        )
    if spec.check_state is not None:
        spec.check_state(model, state)


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
        and unfreeze_layer in get_backbone(model.architecture).renamed_head_modes
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
        architecture: a backbone with torchvision weights (``vgg16``, ``resnet50``,
            ``inception_v3``).
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
    spec = get_backbone(architecture)
    if not spec.torchvision_files:
        raise ValueError(f"{architecture} has no torchvision ImageNet weights; train it from "
                         f"scratch (--pretrained false) or give a checkpoint")
    names = spec.torchvision_files
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    if path is None:
        candidates = [cache / name for name in names]
    elif Path(path).is_dir():
        candidates = [Path(path) / name for name in spec.folder_files + names]
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
    spec = get_backbone(model.architecture)
    if model.family not in spec.torchvision:
        raise CheckpointMismatchError(
            f"{model.architecture} ({model.family} family) has no torchvision ImageNet weights")
    rule = spec.torchvision[model.family]
    drop_always, drop_unless_head, new_layers = rule.drop, rule.drop_unless_head, rule.new_layers
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
    if spec.signature_key not in state:
        raise CheckpointMismatchError(
            f"{file} does not hold torchvision {model.architecture} weights"
        )
    if spec.adapt_torchvision is not None:
        state = spec.adapt_torchvision(state, model)
    _check_shapes(model, state)
    report = _key_differences(model, state)
    allowed_missing = new_layers if keep_head else (*new_layers, f"{model.head_names[0]}.")
    # files saved before PyTorch 0.4.1 have no BatchNorm counters; torch leaves them as they are
    unexplained = [key for key in report.missing_keys if not key.startswith(allowed_missing)
                   and not key.endswith(".num_batches_tracked")]
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


_HEAD_BYTES = 512
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = b"\x80"
_NUMPY_MAGIC = b"\x93NUMPY"


def _not_a_torch_file(head: bytes) -> str | None:
    """What a file is instead of a PyTorch file, judged from its first bytes; None if it may be one.

    ``torch.save`` writes a zip archive (``PK``) or, in the legacy format, a pickle (``0x80``).
    """
    if not head:
        return "the file is empty (0 bytes)"
    if head.startswith((_ZIP_MAGIC, _PICKLE_MAGIC)):
        return None
    if head.startswith(_NUMPY_MAGIC):
        return "it is a NumPy .npy array"
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if text.lower().startswith(("<!doctype html", "<html", "<?xml", "<head", "<body")):
        return "it is an HTML page (often the error page of a failed download)"
    if all(char.isprintable() or char in "\t\r\n" for char in text):
        return f"it is a text file starting with {text.splitlines()[0][:60]!r}"
    return f"it starts with the bytes {head[:8].hex(' ')}"


def _unpickling_problem(message: str) -> str:
    """One line for an error of the ``weights_only`` unpickler (never advising to disable it)."""
    found = re.search(r"GLOBAL ([\w.]+)", message)
    if found is not None:
        return (f"it holds a Python object of type {found.group(1)} besides tensors and plain "
                f"containers; such objects are not unpickled because unpickling can run code. "
                f"Expected tensors in dicts and lists, as torch.save(model.state_dict()) writes")
    detail = message.split("WeightsUnpickler error:")[-1].strip().splitlines()
    reason = detail[0] if detail and detail[0] else "unreadable pickle data"
    return f"not data written by torch.save, or a corrupt file ({reason})"


MODEL_SETTINGS = ("architecture", "family", "model_structure", "num_classes", "large_feature_map")
_REQUIRED_SETTINGS = ("architecture", "family", "num_classes")


def recorded_model_settings(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`MODEL_SETTINGS` a checkpoint records, by name (only those it records).

    Training checkpoints of this project record them at the top level and in their ``config``
    dict; a bare state dict or the authors' checkpoints record none.
    """
    config = checkpoint.get("config")
    config = config if isinstance(config, Mapping) else {}
    recorded = {}
    for name in MODEL_SETTINGS:
        value = checkpoint.get(name, config.get(name))
        if isinstance(value, (str, int, bool)):
            recorded[name] = value
    return recorded


def model_from_checkpoint(
    path: str | os.PathLike, *, defaults: Mapping[str, Any] | None = None, **settings: Any
) -> DualBranchModel:
    """Build the model a checkpoint file holds and load it strictly (evaluation, heatmaps).

    Args:
        path: the checkpoint file.
        defaults: settings used when neither given nor recorded, e.g. ``{"family": "cam"}``.
        **settings: any of :data:`MODEL_SETTINGS`; a value that is not None wins over what the
            checkpoint records (:func:`recorded_model_settings`).

    Returns:
        The model on the CPU, in training mode, holding the checkpoint's weights.

    Raises:
        FileNotFoundError: the file does not exist.
        CheckpointReadError: the file is not a readable checkpoint.
        CheckpointMismatchError: a required setting is neither given nor recorded, or the
            checkpoint does not fit the model built from the settings.
    """
    unknown = sorted(set(settings) - set(MODEL_SETTINGS))
    if unknown:
        raise TypeError(f"unknown model settings {unknown}; expected some of {MODEL_SETTINGS}")
    checkpoint = _torch_load(path)
    if not isinstance(checkpoint, Mapping):
        raise CheckpointMismatchError(
            f"{path} holds a {type(checkpoint).__name__}, not a state dict or checkpoint dict")
    chosen = {**(defaults or {}), **recorded_model_settings(checkpoint),
              **{name: value for name, value in settings.items() if value is not None}}
    missing = [name for name in _REQUIRED_SETTINGS if name not in chosen]
    if missing:
        raise CheckpointMismatchError(
            f"{path} does not record the model's {' and '.join(missing)}; give "
            f"{' and '.join('--' + name for name in missing)}")
    try:
        model = build_model(
            chosen["architecture"],
            chosen["family"],
            int(chosen["num_classes"]),
            model_structure=chosen.get("model_structure", "vanilla"),
            large_feature_map=bool(chosen.get("large_feature_map", False)),
        )
    except ValueError as error:
        raise CheckpointMismatchError(f"cannot build the model of {path}: {error}") from None
    _log_report(str(path), load_model_state(model, checkpoint, strict=True))
    return model
