"""Grad-CAM++ (SPEC §6.2)."""

from __future__ import annotations

import torch
from torch import Tensor

from cam.base import GradientCAM

__all__ = ["GradCAMpp"]

_EPS = 1e-6


class GradCAMpp(GradientCAM):
    r"""Grad-CAM++ (SPEC §6.2).

    From `"Grad-CAM++: Improved Visual Explanations for Deep Convolutional Networks"
    <https://arxiv.org/abs/1710.11063>`_, with the denominator of SPEC §6.2:

    .. math::
        a_c(x, y) = \frac{G_c^2}{2 G_c^2 + S_c G_c^3 + 10^{-6}}, \quad
        S_c = \sum_{x,y} A_c(x, y), \qquad
        \alpha_c = \sum_{x,y} \max(G_c(x, y), 0)\, a_c(x, y), \qquad M = \sum_c \alpha_c A_c

    with a_c(x, y) = 0 wherever G_c(x, y) = 0; for b2, α_c ← max(α_c, 0) (SPEC A2).
    """

    def weights(self, activations: Tensor, grads: Tensor) -> Tensor:
        """Return the Grad-CAM++ channel weights, (B, C)."""
        grads_2 = grads.pow(2)
        sums = activations.sum(dim=(2, 3), keepdim=True)
        alpha = grads_2 / (2 * grads_2 + sums * grads_2 * grads + _EPS)
        alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
        return (grads.clamp_min(0) * alpha).sum(dim=(2, 3))
