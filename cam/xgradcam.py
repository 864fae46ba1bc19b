"""XGradCAM (SPEC §6.2)."""

from __future__ import annotations

from torch import Tensor

from cam.base import GradientCAM

__all__ = ["XGradCAM"]

_EPS = 1e-7


class XGradCAM(GradientCAM):
    r"""XGrad-CAM (SPEC §6.2).

    From `"Axiom-based Grad-CAM: Towards Accurate Visualization and Explanation of CNNs"
    <https://arxiv.org/abs/2008.02312>`_:

    .. math::
        \alpha_c = \frac{\sum_{x,y} G_c(x, y) A_c(x, y)}{\sum_{x,y} A_c(x, y) + 10^{-7}}, \qquad
        M = \sum_c \alpha_c A_c

    for b2 the weights are clamped, α_c ← max(α_c, 0) (SPEC A2).
    """

    def weights(self, activations: Tensor, grads: Tensor) -> Tensor:
        """Return the activation-weighted gradient sums, (B, C)."""
        sums = activations.sum(dim=(2, 3), keepdim=True)
        return (grads * activations / (sums + _EPS)).sum(dim=(2, 3))
