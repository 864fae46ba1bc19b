"""Post-processing of raw maps into 224×224 score maps (SPEC §6.1, §6.2, §6.4, A11).

Two forms of the same chains:

* the OpenCV form (reference): NumPy float32, one `cv2.resize` per map;
* the torch form: batched on the maps' device with `F.interpolate` (`align_corners=False`;
  bicubic with a = −0.75 like OpenCV's INTER_CUBIC, bilinear like INTER_LINEAR when upsampling).
  It agrees with the OpenCV form within float32 rounding (SPEC §7.11; tested to < 1e-5).

Chains, per map:

* CAM (§6.1): bicubic resize of the raw map (no ReLU) → §6.4.
* gradient methods (§6.2): ReLU → min–max with +1e-7 → bilinear resize → ReLU → min–max with
  +1e-7 → §6.4. (OFF then resizes 224→224 with INTER_CUBIC, an exact identity in OpenCV 4.12, so
  it is omitted.)
* §6.4: all-zero if any NaN or if constant, else (s − min) / max(s − min). An infinite value
  is treated like a NaN (the min–max would otherwise produce NaN), so every output is finite.

:func:`postprocess_maps_checked` also reports which maps were non-finite when they reached the
§6.4 step and were therefore replaced by zeros, so that an evaluation can count them.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from cam.registry import get_method

__all__ = [
    "EVAL_SIZE",
    "POSTPROCESS_BACKENDS",
    "PostprocessResult",
    "normalize_scoremap",
    "postprocess_maps",
    "postprocess_maps_checked",
]

EVAL_SIZE = 224
POSTPROCESS_BACKENDS = ("opencv", "torch")
_EPS = 1e-7


def normalize_scoremap(scoremap: np.ndarray) -> np.ndarray:
    """Normalise one score map to [0, 1] (SPEC §6.4).

    Args:
        scoremap: 2-D float32 map.

    Returns:
        A new float32 map: zeros if it holds a NaN or an infinity or is constant, else
        (s − min) / max(s − min).
    """
    scoremap = np.asarray(scoremap, dtype=np.float32)
    if not np.isfinite(scoremap).all() or scoremap.min() == scoremap.max():
        return np.zeros_like(scoremap)
    shifted = scoremap - scoremap.min()
    return shifted / shifted.max()


def _minmax_eps(scoremap: np.ndarray) -> np.ndarray:
    shifted = scoremap - np.min(scoremap)
    return shifted / (_EPS + np.max(shifted))


def _cam_chain_opencv(scoremap: np.ndarray, size: int) -> np.ndarray:
    """§6.1 up to the §6.4 normalisation."""
    return cv2.resize(scoremap, (size, size), interpolation=cv2.INTER_CUBIC)


def _gradient_chain_opencv(scoremap: np.ndarray, size: int) -> np.ndarray:
    """§6.2 up to the §6.4 normalisation."""
    with np.errstate(invalid="ignore"):
        scoremap = _minmax_eps(np.maximum(scoremap, 0))
        scoremap = cv2.resize(scoremap, (size, size), interpolation=cv2.INTER_LINEAR)
        return _minmax_eps(np.maximum(scoremap, 0))


def _normalize_torch(maps: Tensor) -> Tensor:
    flat = maps.flatten(1)
    low, high = flat.amin(dim=1), flat.amax(dim=1)
    valid = torch.isfinite(flat).all(dim=1) & (low != high)
    shifted = maps - low[:, None, None]
    span = torch.where(valid, shifted.flatten(1).amax(dim=1), torch.ones_like(low))
    return torch.where(valid[:, None, None], shifted / span[:, None, None], torch.zeros_like(maps))


def _minmax_eps_torch(maps: Tensor) -> Tensor:
    shifted = maps - maps.flatten(1).amin(dim=1)[:, None, None]
    return shifted / (shifted.flatten(1).amax(dim=1)[:, None, None] + _EPS)


def _resize_torch(maps: Tensor, size: int, mode: str) -> Tensor:
    return F.interpolate(maps[:, None], size=(size, size), mode=mode, align_corners=False)[:, 0]


def _cam_chain_torch(maps: Tensor, size: int) -> Tensor:
    return _resize_torch(maps, size, "bicubic")


def _gradient_chain_torch(maps: Tensor, size: int) -> Tensor:
    maps = _minmax_eps_torch(maps.clamp_min(0))
    return _minmax_eps_torch(_resize_torch(maps, size, "bilinear").clamp_min(0))


class PostprocessResult(NamedTuple):
    """Score maps and, per map, whether it was non-finite before the §6.4 normalisation."""

    scoremaps: np.ndarray | Tensor
    nonfinite: np.ndarray


def postprocess_maps(
    maps: Tensor | np.ndarray,
    method: str,
    backend: str = "opencv",
    *,
    size: int = EVAL_SIZE,
) -> np.ndarray | Tensor:
    """Turn raw maps into normalised score maps with the chain of `method`.

    Args:
        maps: raw maps, (B, h, w).
        method: `cam` selects the §6.1 chain, any gradient method the §6.2 chain.
        backend: `opencv` (reference; returns a NumPy array) or `torch` (returns a tensor on the
            maps' device).
        size: output side; the evaluation frame is 224 (SPEC §2.3), other sizes are for overlays
            and comparisons at the input resolution.

    Returns:
        (B, size, size) float32 maps in [0, 1].

    Raises:
        ValueError: for an unknown method or backend, or maps that are not 3-D.
    """
    return postprocess_maps_checked(maps, method, backend, size=size).scoremaps


def postprocess_maps_checked(
    maps: Tensor | np.ndarray,
    method: str,
    backend: str = "opencv",
    *,
    size: int = EVAL_SIZE,
) -> PostprocessResult:
    """:func:`postprocess_maps` that also reports the maps zeroed for non-finite values.

    A map whose chain output holds a NaN or an infinity just before the §6.4 normalisation
    (from a NaN or infinite raw value, or an overflow) becomes an all-zero score map; its entry
    of ``nonfinite`` is True.

    Returns:
        The score maps of :func:`postprocess_maps` and a (B,) bool NumPy array.

    Raises:
        ValueError: for an unknown method or backend, or maps that are not 3-D.
    """
    get_method(method)
    if backend not in POSTPROCESS_BACKENDS:
        raise ValueError(f"backend must be one of {POSTPROCESS_BACKENDS}, got {backend!r}")
    if maps.ndim != 3:
        raise ValueError(f"maps must be (B, h, w), got shape {tuple(maps.shape)}")
    is_cam = method == "cam"
    if backend == "torch":
        maps = torch.as_tensor(maps).float()
        chained = _cam_chain_torch(maps, size) if is_cam else _gradient_chain_torch(maps, size)
        nonfinite = ~torch.isfinite(chained.flatten(1)).all(dim=1)
        return PostprocessResult(_normalize_torch(chained), nonfinite.cpu().numpy())
    if isinstance(maps, Tensor):
        maps = maps.detach().cpu().numpy()
    maps = np.asarray(maps, dtype=np.float32)
    chain = _cam_chain_opencv if is_cam else _gradient_chain_opencv
    out = np.empty((maps.shape[0], size, size), dtype=np.float32)
    nonfinite = np.zeros(maps.shape[0], dtype=bool)
    for index, scoremap in enumerate(maps):
        chained = chain(np.ascontiguousarray(scoremap), size)
        nonfinite[index] = not np.isfinite(chained).all()
        out[index] = normalize_scoremap(chained)
    return PostprocessResult(out, nonfinite)
