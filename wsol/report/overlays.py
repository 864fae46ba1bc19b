"""Heatmap overlays: a JET-coloured heatmap blended over its image, ground truth and prediction.

Every function takes and returns ``(H, W, 3)`` uint8 BGR arrays, ready for ``cv2.imwrite``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np
import torch

__all__ = ["GT_COLOUR", "PRED_COLOUR", "blend_heatmap", "denormalize", "draw_boxes",
           "draw_outline", "rgb_to_bgr"]

GT_COLOUR = (0, 200, 0)
PRED_COLOUR = (0, 0, 255)
_LINE_WIDTH = 2


def denormalize(image: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """A ``(3, H, W)`` tensor normalised with ``mean``/``std`` back to a uint8 BGR image."""
    mean_t = torch.tensor(mean).view(3, 1, 1)
    std_t = torch.tensor(std).view(3, 1, 1)
    rgb = (image.detach().cpu() * std_t + mean_t).clamp(0, 1).permute(1, 2, 0).numpy()
    return rgb_to_bgr((rgb * 255).round().astype(np.uint8))


def rgb_to_bgr(image: np.ndarray) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 RGB array (e.g. ``np.asarray`` of a PIL image) as BGR."""
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)


def blend_heatmap(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the JET-coloured ``heatmap`` (``(H, W)`` in [0, 1]) over ``image`` with weight
    ``alpha``."""
    colours = cv2.applyColorMap((255 * heatmap).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.addWeighted(image, 1 - alpha, colours, alpha, 0)


def draw_boxes(canvas: np.ndarray, boxes: Iterable[Sequence[float]],
               colour: tuple[int, int, int]) -> np.ndarray:
    """Draw ``(x0, y0, x1, y1)`` boxes on ``canvas`` in place; returns it."""
    for x0, y0, x1, y1 in boxes:
        cv2.rectangle(canvas, (int(x0), int(y0)), (int(x1), int(y1)), colour, _LINE_WIDTH)
    return canvas


def draw_outline(canvas: np.ndarray, mask: np.ndarray,
                 colour: tuple[int, int, int]) -> np.ndarray:
    """Draw the outer outline of a boolean ``mask`` on ``canvas`` in place; returns it."""
    contours = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                cv2.CHAIN_APPROX_SIMPLE)[-2]
    cv2.drawContours(canvas, contours, -1, colour, _LINE_WIDTH)
    return canvas
