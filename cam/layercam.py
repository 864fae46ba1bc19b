"""LayerCAM (SPEC §6.2)."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from cam.base import GradientCAM

__all__ = ["LayerCAM"]


class LayerCAM(GradientCAM):
    r"""LayerCAM (SPEC §6.2).

    From `"LayerCAM: Exploring Hierarchical Class Activation Maps for Localization"
    <https://ieeexplore.ieee.org/document/9462463>`_:

    .. math::
        M(x, y) = \sum_c \max(G_c(x, y), 0)\, A_c(x, y)

    The weights are per pixel and already non-negative, so the b2 clamp does not apply (SPEC A2).
    """

    clampable: ClassVar[bool] = False

    def weights(self, activations: Tensor, grads: Tensor) -> Tensor:
        """Return the rectified gradients as per-pixel weights, (B, C, h, w)."""
        return grads.clamp_min(0)
