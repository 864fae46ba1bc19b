"""Registry of the CAM methods by their command-line names (SPEC §6)."""

from __future__ import annotations

from cam.base import CAMMethod
from cam.cam import CAM
from cam.gradcam import GradCAM
from cam.gradcampp import GradCAMpp
from cam.layercam import LayerCAM
from cam.xgradcam import XGradCAM

__all__ = ["CAM_METHODS", "get_method"]

CAM_METHODS: dict[str, type[CAMMethod]] = {
    "cam": CAM,
    "gradcam": GradCAM,
    "gradcam++": GradCAMpp,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
}


def get_method(name: str) -> type[CAMMethod]:
    """Return the class registered as `name`.

    Raises:
        ValueError: for an unknown name.
    """
    if name not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {name!r}; choose from {sorted(CAM_METHODS)}")
    return CAM_METHODS[name]
