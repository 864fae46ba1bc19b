"""Explanation-fidelity metrics: Average Drop, Increase in Confidence, Insertion and Deletion AUC.

Average Drop and Increase in Confidence follow Grad-CAM++ (Chattopadhay et al., WACV 2018,
https://arxiv.org/abs/1710.11063); Insertion and Deletion follow RISE (Petsiuk et al., BMVC 2018,
https://arxiv.org/abs/1806.07421). Definitions, the two scoring protocols and the default settings
are documented in ``docs/fidelity.md``.

Everything runs batched in torch on the images' device. :class:`FidelityMeter` keeps additive
sums so that chunked or multi-process evaluation reduces to :meth:`FidelityMeter.merge`. The
pure functions score hand-made tensors and are what the meter is built from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "BASELINES",
    "DEFAULT_NUM_STEPS",
    "DROP_EPS",
    "METRICS",
    "PROTOCOLS",
    "FidelityMeter",
    "auc",
    "average_drop",
    "class_confidence",
    "confidence_drop",
    "confidence_increase",
    "confidence_logits",
    "deletion_curve",
    "gaussian_blur",
    "importance_ranks",
    "increase_in_confidence",
    "insertion_curve",
    "make_baseline",
    "predicted_classes",
    "step_counts",
]

PROTOCOLS = ("authors", "softmax_head")
METRICS = ("avg_drop", "increase_in_confidence", "insertion_auc", "deletion_auc")
BASELINES = ("zeros", "blur")
DEFAULT_NUM_STEPS = 56
DROP_EPS = 1e-7

ScoreFn = Callable[[Tensor], Tensor]


def _output_logits(outputs: Mapping[str, Tensor], key: str) -> Tensor:
    """Return ``outputs[key]`` after checking that it is a (B, K) tensor."""
    if not isinstance(outputs, Mapping):
        raise TypeError(f"model outputs must be a dict with 'logits', got {type(outputs).__name__}")
    if key not in outputs:
        raise KeyError(f"model outputs have no {key!r}; keys: {sorted(outputs)}")
    logits = outputs[key]
    if not isinstance(logits, Tensor) or logits.dim() != 2:
        raise ValueError(f"outputs[{key!r}] must be a (B, K) tensor, got {_describe(logits)}")
    return logits


def _describe(value: object) -> str:
    """Short description of a value for error messages."""
    if isinstance(value, (Tensor, np.ndarray)):
        return f"{type(value).__name__} of shape {tuple(value.shape)}"
    return type(value).__name__


def _check_protocol(protocol: str) -> None:
    """Raise ``ValueError`` for an unknown protocol name."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")


def predicted_classes(outputs: Mapping[str, Tensor]) -> Tensor:
    """Classes the authors' protocol explains: the argmax of the head-1 (softmax head) logits.

    Args:
        outputs: Model output dict with ``logits`` of shape (B, K).

    Returns:
        Predicted class indices, int64 tensor of shape (B,).
    """
    return _output_logits(outputs, "logits").argmax(dim=1)


def confidence_logits(outputs: Mapping[str, Tensor], protocol: str) -> Tensor:
    """Logits whose softmax is the confidence under a protocol.

    ``authors``: ``logits2`` (sigmoid branch) when present, else ``logits``.
    ``softmax_head``: always ``logits`` (head 1).

    Args:
        outputs: Model output dict with ``logits`` (B, K) and optionally ``logits2`` (B, K).
        protocol: One of :data:`PROTOCOLS`.

    Returns:
        The selected logits, shape (B, K).
    """
    _check_protocol(protocol)
    if protocol == "authors" and "logits2" in outputs:
        return _output_logits(outputs, "logits2")
    return _output_logits(outputs, "logits")


def _as_classes(classes: Tensor | np.ndarray | Sequence[int], batch: int, num_classes: int,
                device: torch.device) -> Tensor:
    """Convert class indices to an int64 (B,) tensor on ``device`` and check them."""
    classes = torch.as_tensor(classes, device=device)
    if classes.dim() != 1 or classes.shape[0] != batch:
        raise ValueError(f"target classes must have shape ({batch},), got {tuple(classes.shape)}")
    if classes.is_floating_point() or classes.is_complex() or classes.dtype == torch.bool:
        raise TypeError(f"target classes must be integers, got dtype {classes.dtype}")
    classes = classes.long()
    if batch and (int(classes.min()) < 0 or int(classes.max()) >= num_classes):
        raise ValueError(f"target classes must lie in [0, {num_classes}), got "
                         f"[{int(classes.min())}, {int(classes.max())}]")
    return classes


def class_confidence(outputs: Mapping[str, Tensor], classes: Tensor | np.ndarray | Sequence[int],
                     protocol: str) -> Tensor:
    """Softmax probability of the given class, over the head the protocol selects.

    Args:
        outputs: Model output dict with ``logits`` (B, K) and optionally ``logits2`` (B, K).
        classes: Class index per image, shape (B,).
        protocol: One of :data:`PROTOCOLS`.

    Returns:
        Float32 probabilities of shape (B,).
    """
    logits = confidence_logits(outputs, protocol)
    index = _as_classes(classes, logits.shape[0], logits.shape[1], logits.device)
    return _gather_confidence(outputs, index, protocol)


def _gather_confidence(outputs: Mapping[str, Tensor], index: Tensor, protocol: str) -> Tensor:
    """Softmax probability at already validated class indices (B,); no host synchronisation."""
    logits = confidence_logits(outputs, protocol)
    if logits.shape[0] != index.shape[0]:
        raise ValueError(f"model outputs hold {logits.shape[0]} rows for {index.shape[0]} images")
    return logits.float().softmax(dim=1).gather(1, index[:, None]).squeeze(1)


def _check_pair(y: Tensor, o: Tensor) -> tuple[Tensor, Tensor]:
    """Check that clean and perturbed scores are matching 1-D tensors."""
    y, o = torch.as_tensor(y), torch.as_tensor(o)
    if y.dim() != 1 or y.shape != o.shape:
        raise ValueError(f"scores y and o must be 1-D of equal length, got shapes "
                         f"{tuple(y.shape)} and {tuple(o.shape)}")
    return y, o


def confidence_drop(y: Tensor, o: Tensor, eps: float = DROP_EPS) -> Tensor:
    """Per-image relative drop ``max(0, Y - O) / (Y + eps)``.

    Args:
        y: Class confidence on the clean images, shape (N,).
        o: Class confidence on the heatmap-perturbed images, shape (N,).
        eps: Added to the denominator (the authors' code uses 1e-7).

    Returns:
        Drops in [0, 1], shape (N,).
    """
    y, o = _check_pair(y, o)
    return (y - o).clamp(min=0) / (y + eps)


def confidence_increase(y: Tensor, o: Tensor) -> Tensor:
    """Per-image indicator ``1[O - Y > 0]`` of shape (N,); inputs as in :func:`confidence_drop`."""
    y, o = _check_pair(y, o)
    return (o - y > 0).to(torch.promote_types(y.dtype, torch.float32))


def average_drop(y: Tensor, o: Tensor, eps: float = DROP_EPS) -> float:
    """% Average Drop: ``100 / N * sum_i max(0, Y_i - O_i) / (Y_i + eps)``; lower is better.

    Args:
        y: Class confidence on the clean images, shape (N,), N > 0.
        o: Class confidence on the heatmap-perturbed images, shape (N,).
        eps: Added to the denominator.

    Returns:
        The metric in percent.
    """
    drops = confidence_drop(y, o, eps)
    if drops.numel() == 0:
        raise ValueError("average_drop needs at least one image")
    return 100.0 * float(drops.double().mean())


def increase_in_confidence(y: Tensor, o: Tensor) -> float:
    """% Increase in Confidence: ``100 / N * sum_i 1[O_i - Y_i > 0]``; higher is better.

    Args:
        y: Class confidence on the clean images, shape (N,), N > 0.
        o: Class confidence on the heatmap-perturbed images, shape (N,).

    Returns:
        The metric in percent.
    """
    increases = confidence_increase(y, o)
    if increases.numel() == 0:
        raise ValueError("increase_in_confidence needs at least one image")
    return 100.0 * float(increases.double().mean())


def auc(curve: Tensor, fractions: Tensor | None = None) -> Tensor:
    """Area under a curve sampled on the fraction axis [0, 1], by the trapezoidal rule.

    Args:
        curve: Scores of shape (..., S + 1), S >= 1.
        fractions: Non-decreasing abscissae from 0 to 1, shape (S + 1,); default: the uniform
            grid ``k / S``.

    Returns:
        Areas of shape (...), in the units of ``curve``.
    """
    curve = torch.as_tensor(curve)
    if curve.dim() == 0 or curve.shape[-1] < 2:
        raise ValueError(f"curve must have at least 2 points on its last axis, got shape "
                         f"{tuple(curve.shape)}")
    if fractions is None:
        fractions = torch.linspace(0.0, 1.0, curve.shape[-1], dtype=torch.float64,
                                   device=curve.device)
    fractions = torch.as_tensor(fractions, device=curve.device)
    if fractions.shape != (curve.shape[-1],):
        raise ValueError(f"fractions must have shape ({curve.shape[-1]},), got "
                         f"{tuple(fractions.shape)}")
    if fractions[0] != 0 or fractions[-1] != 1 or bool((fractions.diff() < 0).any()):
        raise ValueError("fractions must be non-decreasing from 0 to 1")
    dtype = torch.promote_types(curve.dtype, torch.float64)
    return torch.trapezoid(curve.to(dtype), fractions.to(dtype), dim=-1)


def step_counts(num_pixels: int, num_steps: int) -> list[int]:
    """Pixels changed after each step: ``floor(k * num_pixels / num_steps)`` for k = 0..S.

    Args:
        num_pixels: Pixels per image (H * W).
        num_steps: Number of steps S, 1 <= S <= num_pixels.

    Returns:
        S + 1 non-decreasing counts from 0 to ``num_pixels``.
    """
    if not 1 <= num_steps <= num_pixels:
        raise ValueError(f"num_steps must lie in [1, {num_pixels}], got {num_steps}")
    return [k * num_pixels // num_steps for k in range(num_steps + 1)]


def importance_ranks(saliency: Tensor) -> Tensor:
    """Rank of every pixel by decreasing saliency (0 = most important; ties in raster order).

    Args:
        saliency: Heatmaps of shape (B, H, W).

    Returns:
        Int64 ranks of shape (B, H, W), a permutation of 0..H*W-1 per image.
    """
    if saliency.dim() != 3:
        raise ValueError(f"saliency must have shape (B, H, W), got {tuple(saliency.shape)}")
    flat = saliency.flatten(1)
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    positions = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, positions).view_as(saliency)


def _check_blur(kernel_size: int, sigma: float) -> None:
    """Raise ``ValueError`` for an even or non-positive kernel size or a non-positive sigma."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")


def gaussian_blur(images: Tensor, kernel_size: int = 11, sigma: float = 5.0) -> Tensor:
    """Separable Gaussian blur per channel with replicate padding (RISE's insertion baseline).

    Args:
        images: Images of shape (B, C, H, W).
        kernel_size: Odd kernel width.
        sigma: Standard deviation in pixels.

    Returns:
        Blurred images of shape (B, C, H, W).
    """
    _check_blur(kernel_size, sigma)
    if images.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    channels = images.shape[1]
    offsets = torch.arange(kernel_size, device=images.device, dtype=torch.float64)
    offsets = offsets - kernel_size // 2
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(images.dtype)
    half = kernel_size // 2
    padded = F.pad(images, (half, half, half, half), mode="replicate")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def make_baseline(images: Tensor, kind: str, *, kernel_size: int = 11,
                  sigma: float = 5.0) -> Tensor:
    """Baseline image that removed pixels take: ``zeros`` (normalised space) or ``blur``.

    Args:
        images: Normalised images of shape (B, C, H, W).
        kind: One of :data:`BASELINES`.
        kernel_size: Blur kernel width (``blur`` only).
        sigma: Blur standard deviation (``blur`` only).

    Returns:
        Baseline images of shape (B, C, H, W).
    """
    if kind == "zeros":
        return torch.zeros_like(images)
    if kind == "blur":
        return gaussian_blur(images, kernel_size, sigma)
    raise ValueError(f"unknown baseline {kind!r}; expected one of {BASELINES}")


def _check_heatmaps(heatmaps: Tensor, images: Tensor) -> None:
    """Check (B, H, W) heatmaps against (B, C, H, W) images: shape, finiteness, range [0, 1]."""
    if images.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    expected = (images.shape[0], *images.shape[2:])
    if tuple(heatmaps.shape) != expected:
        raise ValueError(f"heatmaps must have shape {expected} to match images of shape "
                         f"{tuple(images.shape)}, got {tuple(heatmaps.shape)}")
    if heatmaps.numel() and not bool(torch.isfinite(heatmaps).all()):
        raise ValueError("heatmaps contain NaN or infinite values")
    if heatmaps.numel() and (float(heatmaps.min()) < 0 or float(heatmaps.max()) > 1):
        raise ValueError(f"heatmaps must lie in [0, 1], got [{float(heatmaps.min())}, "
                         f"{float(heatmaps.max())}]")


def _perturbation_curve(score_fn: ScoreFn, images: Tensor, saliency: Tensor, baseline: Tensor,
                        num_steps: int, insert: bool,
                        clean_scores: Tensor | None) -> tuple[Tensor, Tensor]:
    """Shared loop of :func:`deletion_curve` and :func:`insertion_curve`; one forward per step."""
    _check_heatmaps(saliency, images)
    if baseline.shape != images.shape:
        raise ValueError(f"baseline must have the images' shape {tuple(images.shape)}, got "
                         f"{tuple(baseline.shape)}")
    batch, _, height, width = images.shape
    num_pixels = height * width
    counts = step_counts(num_pixels, num_steps)
    ranks = importance_ranks(saliency).unsqueeze(1)
    full_count = num_pixels if insert else 0
    scores = []
    for count in counts:
        if clean_scores is not None and count == full_count:
            step_scores = clean_scores
        else:
            chosen = ranks < count
            perturbed = (torch.where(chosen, images, baseline) if insert
                         else torch.where(chosen, baseline, images))
            step_scores = score_fn(perturbed)
        if step_scores.shape != (batch,):
            raise ValueError(f"scores must have shape ({batch},), got {tuple(step_scores.shape)}")
        scores.append(step_scores.float())
    fractions = torch.tensor(counts, dtype=torch.float64, device=images.device) / num_pixels
    return fractions, torch.stack(scores, dim=1)


def deletion_curve(score_fn: ScoreFn, images: Tensor, saliency: Tensor, baseline: Tensor, *,
                   num_steps: int = DEFAULT_NUM_STEPS,
                   clean_scores: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """RISE deletion: replace the most salient pixels by the baseline first, score every step.

    Step k replaces the ``floor(k * H * W / num_steps)`` highest-ranked pixels (all channels).

    Args:
        score_fn: Maps images (B, C, H, W) to the explained class's probability (B,).
        images: Normalised images of shape (B, C, H, W).
        saliency: Heatmaps of shape (B, H, W) in [0, 1].
        baseline: Values removed pixels take, shape (B, C, H, W).
        num_steps: Number of steps S.
        clean_scores: Scores of the unmodified images (B,), reused for step 0 to save a forward.

    Returns:
        ``(fractions, curve)``: removed fraction per step (S + 1,) float64 and scores (B, S + 1).
    """
    return _perturbation_curve(score_fn, images, saliency, baseline, num_steps, False,
                               clean_scores)


def insertion_curve(score_fn: ScoreFn, images: Tensor, saliency: Tensor, baseline: Tensor, *,
                    num_steps: int = DEFAULT_NUM_STEPS,
                    clean_scores: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """RISE insertion: start from the baseline, restore the most salient pixels first.

    Step k restores the ``floor(k * H * W / num_steps)`` highest-ranked pixels (all channels).

    Args:
        score_fn: Maps images (B, C, H, W) to the explained class's probability (B,).
        images: Normalised images of shape (B, C, H, W).
        saliency: Heatmaps of shape (B, H, W) in [0, 1].
        baseline: Starting images, shape (B, C, H, W).
        num_steps: Number of steps S.
        clean_scores: Scores of the unmodified images (B,), reused for step S to save a forward.

    Returns:
        ``(fractions, curve)``: inserted fraction per step (S + 1,) float64 and scores (B, S + 1).
    """
    return _perturbation_curve(score_fn, images, saliency, baseline, num_steps, True,
                               clean_scores)


class FidelityMeter:
    """Accumulates explanation-fidelity sums over batches; :meth:`compute` gives percentages.

    Example (per evaluation batch, model in eval mode)::

        meter = FidelityMeter(protocol="authors")
        outputs = model(images)
        predicted = predicted_classes(outputs)
        heatmaps = compute_heatmaps(model, images, predicted, method)
        meter.update(model, images, heatmaps, predicted, outputs=outputs)
        meter.compute()  # {"avg_drop": ..., "increase_in_confidence": ..., ...}

    Args:
        protocol: ``authors`` (softmax over ``logits2`` when present, else ``logits``) or
            ``softmax_head`` (softmax over ``logits`` for every model).
        metrics: Subset of :data:`METRICS` to compute.
        num_steps: Insertion/deletion steps S (S + 1 points; S forwards per curve and batch).
        deletion_baseline: Value of deleted pixels, one of :data:`BASELINES`.
        insertion_baseline: Starting image for insertion, one of :data:`BASELINES`.
        blur_kernel_size: Kernel width of the ``blur`` baseline.
        blur_sigma: Standard deviation of the ``blur`` baseline.
    """

    def __init__(self, protocol: str = "authors", metrics: Iterable[str] = METRICS, *,
                 num_steps: int = DEFAULT_NUM_STEPS, deletion_baseline: str = "zeros",
                 insertion_baseline: str = "blur", blur_kernel_size: int = 11,
                 blur_sigma: float = 5.0) -> None:
        _check_protocol(protocol)
        metrics = tuple(metrics)
        unknown = sorted(set(metrics) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; expected a subset of {METRICS}")
        if not metrics:
            raise ValueError("metrics must name at least one metric")
        if num_steps < 1:
            raise ValueError(f"num_steps must be at least 1, got {num_steps}")
        for name, kind in (("deletion_baseline", deletion_baseline),
                           ("insertion_baseline", insertion_baseline)):
            if kind not in BASELINES:
                raise ValueError(f"unknown {name} {kind!r}; expected one of {BASELINES}")
        _check_blur(blur_kernel_size, blur_sigma)
        self.protocol = protocol
        self.metrics = tuple(name for name in METRICS if name in metrics)
        self.num_steps = int(num_steps)
        self.deletion_baseline = deletion_baseline
        self.insertion_baseline = insertion_baseline
        self.blur_kernel_size = int(blur_kernel_size)
        self.blur_sigma = float(blur_sigma)
        self.num_images = 0
        self.sums = dict.fromkeys(self.metrics, 0.0)

    def config(self) -> dict[str, Any]:
        """Settings that must agree for two meters to be merged."""
        return {
            "protocol": self.protocol,
            "metrics": list(self.metrics),
            "num_steps": self.num_steps,
            "deletion_baseline": self.deletion_baseline,
            "insertion_baseline": self.insertion_baseline,
            "blur_kernel_size": self.blur_kernel_size,
            "blur_sigma": self.blur_sigma,
        }

    def update(self, model: nn.Module, images: Tensor, heatmaps: Tensor | np.ndarray,
               target_classes: Tensor | np.ndarray | Sequence[int], *,
               outputs: Mapping[str, Tensor] | None = None) -> None:
        """Score one batch and add it to the sums.

        Args:
            model: Classifier in eval mode whose forward returns a dict with ``logits`` (B, K) and
                optionally ``logits2`` (B, K).
            images: Normalised images of shape (B, C, H, W).
            heatmaps: Post-processed heatmaps in [0, 1] for ``target_classes``, shape (B, H, W),
                NumPy or torch; moved to the images' device.
            target_classes: Explained class per image, shape (B,) (the predicted class in the
                authors' protocol, see :func:`predicted_classes`).
            outputs: The model's outputs on ``images`` if already computed (saves one forward).
        """
        if model.training:
            raise RuntimeError("FidelityMeter.update needs the model in eval mode (model.eval())")
        if not isinstance(images, Tensor):
            raise TypeError(f"images must be a torch tensor, got {_describe(images)}")
        heatmaps = torch.as_tensor(heatmaps, device=images.device).to(images.dtype)
        _check_heatmaps(heatmaps, images)
        batch = images.shape[0]
        if batch == 0:
            return
        with torch.no_grad():
            if outputs is None:
                outputs = model(images)
            classes = _as_classes(target_classes, batch,
                                  confidence_logits(outputs, self.protocol).shape[1],
                                  images.device)

            def score(batch_images: Tensor) -> Tensor:
                return _gather_confidence(model(batch_images), classes, self.protocol)

            clean = _gather_confidence(outputs, classes, self.protocol)
            batch_sums = {}
            if "avg_drop" in self.metrics or "increase_in_confidence" in self.metrics:
                perturbed = score(images * heatmaps.unsqueeze(1))
                batch_sums["avg_drop"] = confidence_drop(clean, perturbed).double().sum()
                batch_sums["increase_in_confidence"] = (
                    confidence_increase(clean, perturbed).double().sum())
            if "deletion_auc" in self.metrics:
                baseline = self._baseline(images, self.deletion_baseline)
                fractions, curve = deletion_curve(score, images, heatmaps, baseline,
                                                  num_steps=self.num_steps, clean_scores=clean)
                batch_sums["deletion_auc"] = auc(curve, fractions).sum()
            if "insertion_auc" in self.metrics:
                baseline = self._baseline(images, self.insertion_baseline)
                fractions, curve = insertion_curve(score, images, heatmaps, baseline,
                                                   num_steps=self.num_steps, clean_scores=clean)
                batch_sums["insertion_auc"] = auc(curve, fractions).sum()
        for name in self.metrics:
            self.sums[name] += float(batch_sums[name])
        self.num_images += batch

    def _baseline(self, images: Tensor, kind: str) -> Tensor:
        """Baseline of the given kind with this meter's blur settings."""
        return make_baseline(images, kind, kernel_size=self.blur_kernel_size,
                             sigma=self.blur_sigma)

    def merge(self, other: FidelityMeter) -> None:
        """Add another meter's sums (same configuration) to this one."""
        if not isinstance(other, FidelityMeter):
            raise TypeError(f"can only merge a FidelityMeter, got {type(other).__name__}")
        if other.config() != self.config():
            raise ValueError(f"cannot merge meters with different settings: {self.config()} vs "
                             f"{other.config()}")
        for name in self.metrics:
            self.sums[name] += other.sums[name]
        self.num_images += other.num_images

    def state_dict(self) -> dict[str, Any]:
        """Plain-Python state: the configuration, the image count and the per-metric sums."""
        return {"config": self.config(), "num_images": self.num_images, "sums": dict(self.sums)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore sums saved by :meth:`state_dict` from a meter with the same settings."""
        if dict(state["config"]) != self.config():
            raise ValueError(f"state was saved with settings {dict(state['config'])}, this meter "
                             f"has {self.config()}")
        if set(state["sums"]) != set(self.metrics):
            raise ValueError(f"state sums {sorted(state['sums'])} do not match metrics "
                             f"{list(self.metrics)}")
        self.num_images = int(state["num_images"])
        self.sums = {name: float(state["sums"][name]) for name in self.metrics}

    def compute(self) -> dict[str, float | int]:
        """Metrics in percent over all images seen, plus ``num_images``.

        Returns:
            ``{"num_images": N}`` and, for each configured metric, ``100 * sum / N``.
        """
        if self.num_images == 0:
            raise RuntimeError("FidelityMeter.compute called before any image was added")
        result: dict[str, float | int] = {"num_images": self.num_images}
        for name in self.metrics:
            result[name] = 100.0 * self.sums[name] / self.num_images
        return result
