"""Shared machinery of the CAM methods (SPEC §6).

`CAMMethod` holds what every method needs: the model, the branch it explains, the positive clamp of
the sigmoid branch (SPEC A2) and the label checks. `GradientCAM` adds the target-layer hook, the one
forward and one backward per batch (SPEC §6.2) and the channel-weighted sum; a gradient method only
supplies `weights(activations, grads)`.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

__all__ = ["CAMMethod", "CAMResult", "GradientCAM", "Labels", "branch_of", "resolve_clamp"]

Labels = Tensor | Sequence[int] | int | None


@dataclass(frozen=True)
class CAMResult:
    """Raw maps of one batch and what the forward pass produced on the way.

    Attributes:
        maps: raw class activation maps, (B, h, w) float32 on the model's device, detached.
        labels: the explained class of each image, (B,) int64.
        outputs: the model's output dict (`logits`, and `logits2` for b2), detached.
    """

    maps: Tensor
    labels: Tensor
    outputs: dict[str, Tensor]


def branch_of(model: nn.Module) -> int:
    """Return the head a heatmap explains: 2 (sigmoid head) for b2 models, else 1 (SPEC §6).

    Raises:
        ValueError: if `model.model_structure` is neither `vanilla` nor `b2`.
    """
    structure = getattr(model, "model_structure", None)
    if structure not in ("vanilla", "b2"):
        raise ValueError(f"model.model_structure must be 'vanilla' or 'b2', got {structure!r}")
    return 2 if structure == "b2" else 1


def resolve_clamp(model: nn.Module, clamp_negative: bool | None) -> bool:
    """Resolve the positive-clamp switch: None means on for b2 and off for vanilla (SPEC A2)."""
    if clamp_negative is None:
        return branch_of(model) == 2
    return bool(clamp_negative)


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


class CAMMethod(abc.ABC):
    """Common interface: `with Method(model) as m: result = m.explain(images, labels)`.

    Args:
        model: a model following the `wsol.models.registry` contract, in eval mode.
        target_layer: dotted module name of the layer a method reads, if it uses one.
        clamp_negative: clamp channel weights at 0; None means on for b2, off for vanilla.
    """

    def __init__(
        self,
        model: nn.Module,
        target_layer: str | None = None,
        *,
        clamp_negative: bool | None = None,
    ) -> None:
        self.model = model
        self.target_layer = target_layer
        self.branch = branch_of(model)
        self.clamp_negative = resolve_clamp(model, clamp_negative)
        self.device = _model_device(model)

    def __enter__(self) -> CAMMethod:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def __call__(self, images: Tensor, labels: Labels = None) -> Tensor:
        """Return the raw maps (B, h, w) of `explain`."""
        return self.explain(images, labels).maps

    @abc.abstractmethod
    def explain(self, images: Tensor, labels: Labels = None) -> CAMResult:
        """Compute the raw maps of a batch.

        Args:
            images: normalised input batch, (B, 3, H, W).
            labels: class to explain per image (one int is broadcast); None explains the
                softmax head's prediction.

        Returns:
            The maps with the explained labels and the model outputs.
        """

    def _prepare(self, images: Tensor) -> Tensor:
        if not isinstance(images, Tensor) or images.dim() != 4:
            raise ValueError(
                f"images must be a (B, C, H, W) tensor, got {type(images).__name__} "
                f"of shape {tuple(getattr(images, 'shape', ()))}"
            )
        if self.model.training:
            raise RuntimeError(
                "the model must be in eval mode (call model.eval()) to compute heatmaps"
            )
        return images.to(self.device)

    def _labels(self, labels: Labels, outputs: dict[str, Tensor]) -> Tensor:
        if not isinstance(outputs, dict) or "logits" not in outputs:
            raise TypeError("the model must return a dict with 'logits' (SPEC §3.6)")
        logits = outputs["logits"]
        batch, num_classes = logits.shape
        if labels is None:
            return logits.detach().argmax(dim=1)
        labels = torch.as_tensor(labels, device=logits.device).long()
        labels = labels.expand(batch) if labels.dim() == 0 else labels.reshape(-1)
        if labels.numel() != batch:
            raise ValueError(f"got {labels.numel()} labels for a batch of {batch} images")
        if bool(((labels < 0) | (labels >= num_classes)).any()):
            raise ValueError(f"labels must lie in [0, {num_classes}), got {labels.tolist()}")
        return labels

    def _scores(self, outputs: dict[str, Tensor]) -> Tensor:
        key = "logits2" if self.branch == 2 else "logits"
        if key not in outputs:
            raise ValueError(f"a {self.model.model_structure} model must return {key!r}")
        return outputs[key]


class GradientCAM(CAMMethod):
    """Base of the gradient methods: hook, one forward, one backward, channel-weighted sum.

    The hook stores the target layer's output A. The score S = Σ_i z_i[y_i] (raw logits of head 2
    for b2, head 1 otherwise; SPEC §6.2, A9) is differentiated with `torch.autograd.grad` with
    respect to A only, so parameter gradients and BatchNorm state are never touched and a frozen
    backbone works as is: the input is a detached clone that requires grad. The map is
    M = Σ_c α_c A_c, with α clamped at 0 when `clamp_negative` (SPEC A2).

    Args:
        model: a model following the `wsol.models.registry` contract, in eval mode.
        target_layer: dotted module name; defaults to `model.cam_layer` (SPEC Appendix A).
        clamp_negative: clamp channel weights at 0; None means on for b2, off for vanilla.
    """

    clampable: ClassVar[bool] = True

    def __init__(
        self,
        model: nn.Module,
        target_layer: str | None = None,
        *,
        clamp_negative: bool | None = None,
    ) -> None:
        super().__init__(model, target_layer, clamp_negative=clamp_negative)
        if self.target_layer is None:
            self.target_layer = model.cam_layer
        self.layer = model.get_submodule(self.target_layer)
        self._handle: RemovableHandle | None = None
        self._captured: list[tuple[Tensor, int]] = []

    def __enter__(self) -> GradientCAM:
        if self._handle is not None:
            raise RuntimeError(f"{type(self).__name__} is already active")
        self._handle = self.layer.register_forward_hook(self._store)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def release(self) -> None:
        """Remove the hook and drop stored tensors (also done on leaving the `with` block)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self._captured.clear()

    def _store(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        if not isinstance(output, Tensor):
            raise TypeError(
                f"target layer {self.target_layer!r} returned {type(output).__name__}, "
                "expected a tensor"
            )
        self._captured.append((output, output._version))

    @abc.abstractmethod
    def weights(self, activations: Tensor, grads: Tensor) -> Tensor:
        """Channel weights from A and G = ∂S/∂A, both (B, C, h, w).

        Returns:
            (B, C) channel weights, or (B, C, h, w) per-pixel weights.
        """

    def explain(self, images: Tensor, labels: Labels = None) -> CAMResult:
        """Run one forward and one backward and return the maps (see `CAMMethod.explain`).

        Raises:
            RuntimeError: outside the `with` block, in train mode, under inference mode, or if
                the target layer did not run exactly once in the forward pass.
            ValueError: for a wrong image shape or labels of the wrong length or range.
        """
        if self._handle is None:
            raise RuntimeError(
                f"use {type(self).__name__} as a context manager: "
                f"`with {type(self).__name__}(model) as cam: ...`"
            )
        if torch.is_inference_mode_enabled():
            raise RuntimeError("gradient methods cannot run inside torch.inference_mode()")
        images = self._prepare(images)
        self._captured.clear()
        try:
            with torch.enable_grad():
                outputs = self.model(images.detach().clone().requires_grad_(True))
                activations = self._activation()
                labels = self._labels(labels, outputs)
                score = self._scores(outputs).gather(1, labels[:, None]).sum()
                (grads,) = torch.autograd.grad(score, activations)
        finally:
            self._captured.clear()
        with torch.no_grad():
            activations = activations.detach()
            weights = self.weights(activations, grads)
            if self.clampable and self.clamp_negative:
                weights = weights.clamp_min(0)
            maps = _weighted_sum(weights, activations)
        detached = {
            key: value.detach() if isinstance(value, Tensor) else value
            for key, value in outputs.items()
        }
        return CAMResult(maps=maps.float(), labels=labels, outputs=detached)

    def _activation(self) -> Tensor:
        if len(self._captured) != 1:
            raise RuntimeError(
                f"target layer {self.target_layer!r} ran {len(self._captured)} times "
                "in one forward pass; expected exactly once"
            )
        activations, version = self._captured[0]
        if activations.dim() != 4:
            raise ValueError(
                f"target layer {self.target_layer!r} output has shape "
                f"{tuple(activations.shape)}, expected (B, C, h, w)"
            )
        if not activations.requires_grad:
            raise RuntimeError(
                f"target layer {self.target_layer!r} output is not part of the autograd graph"
            )
        if activations._version != version:
            raise RuntimeError(
                f"target layer {self.target_layer!r} output was modified in place "
                "after the layer ran; choose the module that produces the final value"
            )
        return activations


def _weighted_sum(weights: Tensor, activations: Tensor) -> Tensor:
    if weights.dim() == 2:
        return torch.einsum("bc,bchw->bhw", weights, activations)
    if weights.shape != activations.shape:
        raise ValueError(
            f"per-pixel weights of shape {tuple(weights.shape)} do not match "
            f"activations of shape {tuple(activations.shape)}"
        )
    return (weights * activations).sum(dim=1)
