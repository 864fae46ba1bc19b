"""What a backbone declares about itself, read by the registry, checkpoints, optimizer and CLIs.

Each backbone file ends with one :class:`BackboneSpec`; :mod:`wsol.models.registry` lists them.
The model classes themselves carry the per-instance facts (``family``, ``head_names``,
``cam_layer``, ``cam_reduction``); the spec carries what the rest of the code needs before or
without a model: the classes per family, how to recognise the backbone in a checkpoint, how
torchvision's ImageNet weights map onto it, and its optimizer parameter groups.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from torch import Tensor

from wsol.models.base import DualBranchModel

__all__ = ["BackboneSpec", "CheckpointMismatchError", "ParamGroupRule", "TorchvisionMapping"]

StateDict = dict[str, Tensor]


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model it is loaded into; the message says why."""


@dataclass(frozen=True)
class ParamGroupRule:
    """The two optimizer groups of SPEC §5.1, by substring patterns on parameter names.

    A parameter whose name contains one of ``patterns`` goes to the scaled group (learning rate ×
    ``lr_classifier_ratio``) when ``matches_are_scaled``, to the base group otherwise.
    """

    patterns: tuple[str, ...]
    matches_are_scaled: bool

    def is_scaled(self, name: str) -> bool:
        """Whether parameter ``name`` trains at the scaled learning rate."""
        matched = any(pattern in name for pattern in self.patterns)
        return matched == self.matches_are_scaled


@dataclass(frozen=True)
class TorchvisionMapping:
    """How torchvision's ImageNet weights map onto one family of a backbone (SPEC §3.9).

    Attributes:
        drop: substrings of torchvision keys that are always dropped.
        drop_unless_head: substrings dropped unless the 1000-class head is kept.
        new_layers: prefixes of the model's keys that torchvision does not provide.
    """

    drop: tuple[str, ...] = ()
    drop_unless_head: tuple[str, ...] = ()
    new_layers: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone: its model classes and the facts the rest of the code reads from it.

    Attributes:
        name: the ``--architecture`` value.
        display_name: the name in result tables (``VGG16``).
        models: family (``cam`` / ``grad``) → class built as ``cls(num_classes, *,
            model_structure, large_feature_map)``.
        signature_key: a state-dict key only this backbone has: recognises it in a checkpoint.
        param_groups: the optimizer groups of SPEC §5.1.
        family_keys: family → key prefix only that family's checkpoints have (when the families
            differ in parameters).
        torchvision_files: torchvision's file names of the ImageNet weights (the authors' first).
        folder_files: names the authors' code expects inside a weights folder.
        torchvision: family → :class:`TorchvisionMapping`; empty when no ImageNet weights exist.
        renamed_head_modes: ``--unfreeze_layer`` values for which a fine-tuning checkpoint's head 1
            is loaded into head 2 (the authors' alternative mode, CAM family).
        check_state: extra compatibility check of a state dict against a model (raises
            :class:`CheckpointMismatchError`), e.g. a feature layout.
        adapt_torchvision: rewrite torchvision's state dict for the model (e.g. re-index layers).
    """

    name: str
    display_name: str
    models: Mapping[str, type[DualBranchModel]]
    signature_key: str
    param_groups: ParamGroupRule
    family_keys: Mapping[str, str] = field(default_factory=dict)
    torchvision_files: tuple[str, ...] = ()
    folder_files: tuple[str, ...] = ()
    torchvision: Mapping[str, TorchvisionMapping] = field(default_factory=dict)
    renamed_head_modes: tuple[str, ...] = ()
    check_state: Callable[[DualBranchModel, Mapping[str, Tensor]], None] | None = None
    adapt_torchvision: Callable[[StateDict, DualBranchModel], StateDict] | None = None

    @property
    def families(self) -> tuple[str, ...]:
        """The families this backbone is built in."""
        return tuple(self.models)
