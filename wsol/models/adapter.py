"""Any torchvision CNN classifier with the sigmoid branch: ``dual_branch``, ``torchvision:<name>``.

A wrapped model takes over the modules of a torchvision classifier under their own names, so its
state dict holds torchvision's keys (a torchvision state dict, or the user's own checkpoint of the
classifier, fills body and head 1) plus those of the sigmoid head (``fc2`` or ``classifier_2``).
It runs the classifier's own computation split in two: :meth:`~TorchvisionModel.forward_features`
up to the last convolutional feature map (the CAM layer) and
:meth:`~TorchvisionModel.forward_heads` from there, so head 1's logits equal the classifier's
output bit for bit. Head 2 has the structure of head 1 and torchvision's initialisation of it.

Supported torchvision classes, the model names built as ``torchvision:<name>``, their CAM layer
and families:

* ``ResNet``: ``resnet*``, ``wide_resnet*``, ``resnext*``; ``layer4``; cam and grad.
* ``RegNet``: ``regnet_*``; ``trunk_output``; cam and grad.
* ``DenseNet``: ``densenet*``; ``relu`` (the ReLU its forward applies after ``features``); cam
  and grad.
* ``EfficientNet``: ``efficientnet_*`` (v1 and v2); ``features``; cam and grad.
* ``MobileNetV2``: ``mobilenet_v2``; ``features``; cam and grad.
* ``MobileNetV3``: ``mobilenet_v3_*``; ``features``; grad.
* ``ConvNeXt``: ``convnext_*``; ``features``; grad.

The CAM family needs a head that is linear on the global average; MobileNetV3 (an MLP head) and
ConvNeXt (LayerNorm before the Linear) are explained by the gradient methods only. A classifier
wrapped by :func:`dual_branch` without a model name gets the architecture ``torchvision:<class>``
(``torchvision:ResNet``): its optimizer groups and checkpoint checks work, but it cannot be built
by name. Weights are read from a local file (``--pretrained_path`` or torch's hub cache), never
downloaded.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import ClassVar

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models import (
    ConvNeXt,
    DenseNet,
    EfficientNet,
    MobileNetV2,
    MobileNetV3,
    RegNet,
    ResNet,
)

from wsol.models.base import DualBranchModel
from wsol.models.spec import BackboneSpec, ParamGroupRule, StateDict, TorchvisionMapping

__all__ = [
    "PREFIX",
    "SUPPORTED_FAMILIES",
    "TorchvisionModel",
    "dual_branch",
    "resolve_torchvision",
]

logger = logging.getLogger(__name__)

PREFIX = "torchvision"
SUPPORTED_FAMILIES = ("resnet", "wide_resnet", "resnext", "regnet", "densenet", "efficientnet",
                      "mobilenet_v2", "mobilenet_v3", "convnext")


def _default_linear_init(linear: nn.Linear) -> None:
    linear.reset_parameters()


def _normal_001_init(linear: nn.Linear) -> None:
    nn.init.normal_(linear.weight, 0.0, 0.01)
    nn.init.zeros_(linear.bias)


def _densenet_init(linear: nn.Linear) -> None:
    linear.reset_parameters()
    nn.init.zeros_(linear.bias)


def _efficientnet_init(linear: nn.Linear) -> None:
    init_range = 1.0 / math.sqrt(linear.out_features)
    nn.init.uniform_(linear.weight, -init_range, init_range)
    nn.init.zeros_(linear.bias)


def _convnext_init(linear: nn.Linear) -> None:
    nn.init.trunc_normal_(linear.weight, std=0.02)
    nn.init.zeros_(linear.bias)


_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def _rename_densenet_keys(state: StateDict, model: DualBranchModel) -> StateDict:
    """torchvision's DenseNet files name ``norm.1``/``conv.2`` what the modules call ``norm1``/
    ``conv2`` (torchvision renames them the same way when it loads them)."""
    renamed = {}
    for key, value in state.items():
        match = _DENSENET_OLD_KEY.match(key)
        renamed[match.group(1) + match.group(2) if match else key] = value
    return renamed


@dataclass(frozen=True)
class _Layout:
    """Where one torchvision class keeps its feature map and head, and how its forward runs.

    Attributes:
        classifier: the torchvision class.
        name_prefixes: prefixes of the model names built from it.
        body: its children that compute the feature map, in order (the last is the CAM layer
            unless ``final_relu``).
        head: its head's attribute name; head 2 is ``fc2`` or ``classifier_2``.
        flatten: the head takes the flattened global average (ConvNeXt's head flattens itself).
        linear_head: the head is linear on the global average, so the CAM family exists.
        signature_key: a state-dict key every model of the class has and no other backbone.
        init_linear: torchvision's initialisation of the head's Linear layers.
        final_relu: the forward applies a ReLU to the body's output (DenseNet).
        adapt_torchvision: rewrite of torchvision's weight files for the modules.
    """

    classifier: type[nn.Module]
    name_prefixes: tuple[str, ...]
    body: tuple[str, ...]
    head: str
    flatten: bool
    linear_head: bool
    signature_key: str
    init_linear: Callable[[nn.Linear], None]
    final_relu: bool = False
    adapt_torchvision: Callable[[StateDict, DualBranchModel], StateDict] | None = None

    @property
    def head_names(self) -> tuple[str, str]:
        """Head 1 and head 2 names, as the paper's backbones name them."""
        return (self.head, "fc2" if self.head == "fc" else f"{self.head}_2")

    @property
    def cam_layer(self) -> str:
        """Dotted name of the module whose output is the feature map."""
        return "relu" if self.final_relu else self.body[-1]


_LAYOUTS = (
    _Layout(ResNet, ("resnet", "wide_resnet", "resnext"),
            ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"),
            "fc", flatten=True, linear_head=True, signature_key="layer1.0.conv1.weight",
            init_linear=_default_linear_init),
    _Layout(RegNet, ("regnet_",), ("stem", "trunk_output"), "fc", flatten=True,
            linear_head=True, signature_key="stem.0.weight", init_linear=_normal_001_init),
    _Layout(DenseNet, ("densenet",), ("features",), "classifier", flatten=True, linear_head=True,
            signature_key="features.conv0.weight", init_linear=_densenet_init, final_relu=True,
            adapt_torchvision=_rename_densenet_keys),
    _Layout(EfficientNet, ("efficientnet_",), ("features",), "classifier", flatten=True,
            linear_head=True, signature_key="features.1.0.block.0.0.weight",
            init_linear=_efficientnet_init),
    _Layout(MobileNetV2, ("mobilenet_v2",), ("features",), "classifier", flatten=True,
            linear_head=True, signature_key="features.1.conv.0.0.weight",
            init_linear=_normal_001_init),
    _Layout(MobileNetV3, ("mobilenet_v3_",), ("features",), "classifier", flatten=True,
            linear_head=False, signature_key="features.1.block.0.0.weight",
            init_linear=_normal_001_init),
    _Layout(ConvNeXt, ("convnext_",), ("features",), "classifier", flatten=False,
            linear_head=False, signature_key="features.1.0.layer_scale",
            init_linear=_convnext_init),
)
_LAYOUT_BY_CLASS = {layout.classifier.__name__: layout for layout in _LAYOUTS}


def _supported_text() -> str:
    return (f"supported are torchvision's {', '.join(SUPPORTED_FAMILIES)} models "
            f"(e.g. {PREFIX}:resnet18, {PREFIX}:convnext_tiny)")


def _layout_of_classifier(classifier: nn.Module) -> _Layout:
    for layout in _LAYOUTS:
        if isinstance(classifier, layout.classifier):
            return layout
    raise ValueError(f"dual_branch cannot wrap a {type(classifier).__name__}; "
                     f"{_supported_text()}")


def _check_forward(classifier: nn.Module, layout: _Layout) -> None:
    """The classifier computes its logits as its torchvision class does, from the same children."""
    for method in ("forward", "_forward_impl"):
        if getattr(type(classifier), method, None) is not getattr(layout.classifier, method, None):
            raise ValueError(f"{type(classifier).__name__} overrides torchvision's "
                             f"{layout.classifier.__name__}.{method}; dual_branch reproduces "
                             f"torchvision's forward and would compute other logits")
    expected = {*layout.body, layout.head, *(["avgpool"] if hasattr(classifier, "avgpool") else [])}
    children = {name for name, _ in classifier.named_children()}
    if children != expected:
        raise ValueError(f"{type(classifier).__name__} has the modules {sorted(children)}, "
                         f"torchvision's {layout.classifier.__name__} has {sorted(expected)}")


def _last_linear(head: nn.Module) -> nn.Linear:
    last = head[-1] if isinstance(head, nn.Sequential) else head
    if not isinstance(last, nn.Linear):
        raise ValueError(f"the classifier's head ends in a {type(last).__name__}, not a Linear")
    return last


def _with_classes(head: nn.Module, num_classes: int, layout: _Layout) -> nn.Module:
    """``head`` whose last Linear outputs ``num_classes`` (a new one, initialised as torchvision
    does, when the count differs)."""
    last = _last_linear(head)
    if last.out_features == num_classes:
        return head
    linear = nn.Linear(last.in_features, num_classes, device=last.weight.device,
                       dtype=last.weight.dtype)
    layout.init_linear(linear)
    if isinstance(head, nn.Sequential):
        head[len(head) - 1] = linear
        return head
    return linear


def _branch_head(head: nn.Module, layout: _Layout) -> nn.Module:
    """A head of the same structure with its own initialisation; its dropout never acts in place,
    so the shared pooled features reach head 1 unchanged."""
    branch = copy.deepcopy(head)
    for module in branch.modules():
        if isinstance(module, nn.Linear):
            layout.init_linear(module)
        elif isinstance(module, nn.Dropout):
            module.inplace = False
        elif hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return branch


class TorchvisionModel(DualBranchModel):
    """A torchvision classifier with the dual-branch output contract (base of every wrapped model).

    The concrete classes (one per model name and family, from :func:`resolve_torchvision`) set
    ``architecture``, ``family``, ``head_names``, ``cam_reduction``, ``layout`` and
    ``torchvision_name``.

    Args:
        num_classes: K.
        model_structure: ``vanilla`` or ``b2`` (adds the sigmoid head).
        large_feature_map: ignored: the torchvision layout is kept, so logits stay torchvision's.
        classifier: the classifier whose modules are taken over; None builds
            ``torchvision.models.get_model(torchvision_name, weights=None, num_classes=K)``.
    """

    layout: ClassVar[_Layout]
    torchvision_name: ClassVar[str | None] = None

    def __init__(
        self,
        num_classes: int,
        *,
        model_structure: str = "vanilla",
        large_feature_map: bool = False,
        classifier: nn.Module | None = None,
    ) -> None:
        super().__init__(num_classes, model_structure, large_feature_map)
        if large_feature_map:
            logger.warning("%s keeps torchvision's layout; --large_feature_map is ignored",
                           self.architecture)
        if classifier is None:
            classifier = torchvision.models.get_model(self.torchvision_name, weights=None,
                                                      num_classes=num_classes)
        layout = self.layout
        _check_forward(classifier, layout)
        for name, module in classifier.named_children():
            self.add_module(name, module)
        if not hasattr(classifier, "avgpool"):
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        if layout.final_relu:
            self.relu = nn.ReLU()
        head, branch = self.head_names
        setattr(self, head, _with_classes(getattr(self, head), num_classes, layout))
        if self.has_branch2:
            setattr(self, branch, _branch_head(getattr(self, head), layout))
        self.cam_layer = layout.cam_layer
        self.train(classifier.training)

    def forward_features(self, x: Tensor) -> Tensor:
        """Images ``(B, 3, H, W)`` → the last convolutional feature map ``(B, C, h, w)``."""
        for name in self.layout.body:
            x = getattr(self, name)(x)
        return self.relu(x) if self.layout.final_relu else x

    def forward_heads(self, features: Tensor) -> dict[str, Tensor]:
        """Features → global average → head 1 (and head 2), as the torchvision forward does."""
        pooled = self.avgpool(features)
        if self.layout.flatten:
            pooled = torch.flatten(pooled, 1)
        outputs = {}
        if self.has_branch2:  # head 2 first: head 1's dropout may act in place (EfficientNet)
            outputs["logits2"] = self.head(2)(pooled)
        return {"logits": self.head(1)(pooled), **outputs}

    def head_weights(self, branch: int) -> Tensor:
        """Weight ``(K, C)`` of the last Linear of head ``branch``. CAM family only."""
        if self.cam_reduction is None:
            return super().head_weights(branch)
        return self.get_submodule(self.output_layer_name(branch)).weight


@functools.cache
def _model_class(layout: _Layout, architecture: str, family: str,
                 torchvision_name: str | None) -> type[TorchvisionModel]:
    """The wrapped-model class of one architecture and family (the same class on every call)."""
    title = "CAM" if family == "cam" else "Grad"
    return type(f"Torchvision{layout.classifier.__name__}{title}", (TorchvisionModel,), {
        "__doc__": f"{architecture} ({family} family): {TorchvisionModel.__doc__.splitlines()[0]}",
        "__module__": __name__,
        "architecture": architecture,
        "family": family,
        "head_names": layout.head_names,
        "cam_reduction": "mean" if family == "cam" else None,
        "layout": layout,
        "torchvision_name": torchvision_name,
    })


def _families(layout: _Layout) -> tuple[str, ...]:
    return ("cam", "grad") if layout.linear_head else ("grad",)


def _weights_files(name: str) -> tuple[str, ...]:
    """File names of torchvision's ImageNet weights of a model, the default first (read from the
    weights enum; nothing is fetched)."""
    weights = torchvision.models.get_model_weights(name)
    urls = dict.fromkeys([weights.DEFAULT.url, *(member.url for member in weights)])
    return tuple(PurePosixPath(url).name for url in urls)


def _layout_of_name(name: str) -> _Layout:
    if name in torchvision.models.list_models(module=torchvision.models):
        for layout in _LAYOUTS:
            if name.startswith(layout.name_prefixes):
                return layout
        raise ValueError(f"{PREFIX}:{name} is not supported: {_supported_text()}")
    raise ValueError(f"unknown torchvision classifier {PREFIX}:{name}; {_supported_text()}")


@functools.cache
def resolve_torchvision(name: str) -> BackboneSpec:
    """The spec of ``torchvision:<name>``: a torchvision model name, or a class name
    (``ResNet``) for classifiers wrapped by :func:`dual_branch` without a model name.

    Both families share every parameter (a checkpoint of one loads into the other). The optimizer
    runs the body at the base learning rate and both heads at the scaled one, as for the paper's
    VGG16 and InceptionV3. Weight files come only from a given local path or torch's hub cache,
    under torchvision's file name or ``<name>.pth``.

    Raises:
        ValueError: for a name outside the supported families, listing them.
    """
    architecture = f"{PREFIX}:{name}"
    by_class = _LAYOUT_BY_CLASS.get(name)
    layout = by_class or _layout_of_name(name)
    families = _families(layout)
    head, branch = layout.head_names
    mapping = TorchvisionMapping(drop_unless_head=(f"{head}.",), new_layers=(f"{branch}.",))
    return BackboneSpec(
        name=architecture,
        display_name=f"{name} (torchvision)",
        models={} if by_class else {
            family: _model_class(layout, architecture, family, name) for family in families
        },
        signature_key=layout.signature_key,
        param_groups=ParamGroupRule(patterns=tuple(f"{child}." for child in layout.body),
                                    matches_are_scaled=False),
        torchvision_files=() if by_class else _weights_files(name),
        folder_files=() if by_class else (f"{name}.pth",),
        torchvision={} if by_class else {family: mapping for family in families},
        adapt_torchvision=layout.adapt_torchvision,
    )


def dual_branch(
    model: nn.Module,
    num_classes: int | None = None,
    *,
    family: str = "grad",
    model_structure: str = "b2",
    branch_init: str = "random",
    architecture: str | None = None,
) -> TorchvisionModel:
    """Wrap a torchvision classifier: its feature map, its head as head 1, and the sigmoid head.

    The returned model shares the classifier's modules (and so its weights): copy the classifier
    first to keep both apart. It follows the output contract of every wsol model, so the CAM
    methods, :func:`wsol.models.freezing.set_train_mode`, the optimizer, the checkpoint loaders
    and the fidelity metrics take it as they are.

    Args:
        model: an instance of a supported torchvision class (see the module docstring), with
            torchvision's forward.
        num_classes: K; None keeps the classifier's own. Another count replaces the last Linear
            of head 1 by a new one (initialised as torchvision does), to fine-tune the whole model.
        family: ``grad`` (explained by the gradient methods) or ``cam`` (CAM from the head
            weights; classifiers whose head is linear on the global average).
        model_structure: ``b2`` (adds the sigmoid head) or ``vanilla``.
        branch_init: ``random`` (head 2 initialised as torchvision initialises head 1) or
            ``clone`` (head 2 copies head 1).
        architecture: ``torchvision:<name>`` of the classifier, recorded as the model's
            architecture (``--architecture`` then rebuilds it); None: ``torchvision:<class>``.

    Returns:
        The wrapped model, in the classifier's training/eval mode.

    Raises:
        ValueError: for an unsupported classifier, family, structure, ``branch_init`` or
            an ``architecture`` of another torchvision class.
    """
    layout = _layout_of_classifier(model)
    if family not in ("cam", "grad"):
        raise ValueError(f"family must be 'cam' or 'grad', got {family!r}")
    if family not in _families(layout):
        raise ValueError(f"family 'cam' is not available for a {layout.classifier.__name__}: its "
                         f"head is not linear on the global average; use family='grad'")
    if branch_init not in ("random", "clone"):
        raise ValueError(f"branch_init must be 'random' or 'clone', got {branch_init!r}")
    if branch_init == "clone" and model_structure != "b2":
        raise ValueError("branch_init='clone' needs model_structure='b2'")
    name = layout.classifier.__name__
    if architecture is not None:
        prefix, _, name = architecture.partition(":")
        if prefix != PREFIX or (_LAYOUT_BY_CLASS.get(name) or _layout_of_name(name)) != layout:
            raise ValueError(f"architecture must be {PREFIX}:<name> of a "
                             f"{layout.classifier.__name__} model, got {architecture!r}")
    if num_classes is None:
        num_classes = _last_linear(getattr(model, layout.head)).out_features
    model_class = _model_class(layout, f"{PREFIX}:{name}", family,
                               None if name in _LAYOUT_BY_CLASS else name)
    wrapped = model_class(num_classes, model_structure=model_structure, classifier=model)
    wrapped.branch_init = branch_init
    if branch_init == "clone":
        from wsol.models.registry import clone_branch  # the registry imports this module

        clone_branch(wrapped)
    return wrapped
