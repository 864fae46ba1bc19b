"""Grad-CAM (SPEC §6.2)."""

from __future__ import annotations

from torch import Tensor

from cam.base import GradientCAM

__all__ = ["GradCAM"]


class GradCAM(GradientCAM):
    r"""Grad-CAM (SPEC §6.2).

    From `"Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization"
    <https://arxiv.org/abs/1610.02391>`_:

    .. math::
        \alpha_c = \frac{1}{hw} \sum_{x,y} G_c(x, y), \qquad M = \sum_c \alpha_c A_c

    with G = ∂S/∂A; for b2 the weights are clamped, α_c ← max(α_c, 0) (SPEC A2).
    """

    def weights(self, activations: Tensor, grads: Tensor) -> Tensor:
        """Return the spatial mean of the gradients, (B, C)."""
        return grads.mean(dim=(2, 3))
