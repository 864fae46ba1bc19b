"""One-call heatmaps for a batch: `compute_heatmaps` and the lower-level `raw_maps`."""

from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from cam.base import Labels
from cam.postprocess import postprocess_maps
from cam.registry import get_method

__all__ = ["compute_heatmaps", "raw_maps"]


def raw_maps(
    model: nn.Module,
    images: Tensor,
    labels: Labels = None,
    method: str = "gradcam",
    *,
    clamp_negative: bool | None = None,
    target_layer: str | None = None,
) -> Tensor:
    """Raw class activation maps of a batch, before any post-processing.

    Args:
        model: a `wsol.models.registry` model in eval mode.
        images: normalised batch, (B, 3, H, W).
        labels: class explained per image (SPEC §6: the ground truth); None explains the softmax
            head's prediction.
        method: a name of `cam.CAM_METHODS`.
        clamp_negative: clamp channel weights at 0; None means on for b2, off for vanilla (SPEC A2).
        target_layer: dotted module name for the gradient methods; defaults to `model.cam_layer`.

    Returns:
        (B, h, w) float32 maps on the model's device.
    """
    with get_method(method)(model, target_layer, clamp_negative=clamp_negative) as explainer:
        return explainer(images, labels)


def compute_heatmaps(
    model: nn.Module,
    images: Tensor,
    labels: Labels,
    method: str,
    *,
    clamp_negative: bool | None = None,
    target_layer: str | None = None,
    postprocess: str = "opencv",
) -> np.ndarray | Tensor:
    """Post-processed, normalised 224×224 heatmaps of a batch (SPEC §6.1–6.4).

    Args:
        model: a `wsol.models.registry` model in eval mode.
        images: normalised batch, (B, 3, H, W).
        labels: class explained per image (the ground truth); None explains the softmax head's
            prediction.
        method: a name of `cam.CAM_METHODS`.
        clamp_negative: clamp channel weights at 0; None means on for b2, off for vanilla (SPEC A2).
        target_layer: dotted module name for the gradient methods; defaults to `model.cam_layer`.
        postprocess: `opencv` (the reference chain; NumPy result) or `torch` (on the device;
            tensor result).

    Returns:
        (B, 224, 224) float32 maps in [0, 1]: a NumPy array or a tensor on the model's device.
    """
    maps = raw_maps(
        model, images, labels, method, clamp_negative=clamp_negative, target_layer=target_layer
    )
    return postprocess_maps(maps, method, postprocess)
