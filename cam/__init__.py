"""Class activation maps: CAM, Grad-CAM, Grad-CAM++, XGradCAM and LayerCAM (SPEC §6).

Usage::

    from cam import compute_heatmaps
    heatmaps = compute_heatmaps(model.eval(), images, labels, "gradcam")  # (B, 224, 224)
"""

from cam.api import compute_heatmaps, raw_maps
from cam.base import CAMMethod, CAMResult, GradientCAM
from cam.cam import CAM
from cam.gradcam import GradCAM
from cam.gradcampp import GradCAMpp
from cam.layercam import LayerCAM
from cam.postprocess import (
    EVAL_SIZE,
    POSTPROCESS_BACKENDS,
    PostprocessResult,
    normalize_scoremap,
    postprocess_maps,
    postprocess_maps_checked,
)
from cam.registry import CAM_METHODS, get_method
from cam.xgradcam import XGradCAM

__all__ = [
    "CAM",
    "CAM_METHODS",
    "EVAL_SIZE",
    "POSTPROCESS_BACKENDS",
    "CAMMethod",
    "CAMResult",
    "GradCAM",
    "GradCAMpp",
    "GradientCAM",
    "LayerCAM",
    "PostprocessResult",
    "XGradCAM",
    "compute_heatmaps",
    "get_method",
    "normalize_scoremap",
    "postprocess_maps",
    "postprocess_maps_checked",
    "raw_maps",
]
