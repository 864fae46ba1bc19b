"""Ground-truth masks of mask datasets (OpenImages), SPEC §2.5."""

from __future__ import annotations

import os

import cv2
import numpy as np

from wsol.metrics.boxes import EVAL_SIZE

__all__ = ["MASK_BACKGROUND", "MASK_FOREGROUND", "MASK_IGNORE", "load_gt_mask"]

MASK_BACKGROUND = 0
MASK_FOREGROUND = 1
MASK_IGNORE = 255


def _read_binary(path: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"mask file not found: {path} (check --mask_root)")
    image = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"mask file could not be decoded as an image: {path}")
    resized = cv2.resize(image.astype(np.float32), (EVAL_SIZE, EVAL_SIZE),
                         interpolation=cv2.INTER_NEAREST)
    return resized > 0.5


def load_gt_mask(mask_root: str, mask_paths: list[str], ignore_path: str) -> np.ndarray:
    """Encoded 224×224 ground truth: 1 foreground, 0 background, 255 ignore.

    All instance masks are unioned; ignore pixels are ignore-mask pixels that are not foreground.

    Args:
        mask_root: folder the metadata's mask paths are relative to.
        mask_paths: instance mask paths of one image.
        ignore_path: the image's ignore mask path.

    Raises:
        FileNotFoundError: a mask file does not exist.
        ValueError: a mask file cannot be decoded.
    """
    foreground = np.zeros((EVAL_SIZE, EVAL_SIZE), dtype=bool)
    for mask_path in mask_paths:
        foreground |= _read_binary(os.path.join(mask_root, mask_path))
    ignore = _read_binary(os.path.join(mask_root, ignore_path)) & ~foreground
    encoded = foreground.astype(np.uint8)
    encoded[ignore] = MASK_IGNORE
    return encoded
