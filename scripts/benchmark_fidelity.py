"""Cost per image of each explanation-fidelity metric, against one bare forward pass.

Builds an untrained model (no weights are read or downloaded), feeds it random normalised images
and smooth random heatmaps, and times ``FidelityMeter.update`` with one metric at a time. Every
timing includes the meter's own clean forward pass and is the best of its repeats. The last column
repeats the timing with a near-free stand-in model, which isolates the metric's own tensor work
(ranking, masking, blurring). Results are only about cost: the metric values of an untrained
model mean nothing.

Usage (from the repository root)::

    python scripts/benchmark_fidelity.py --architecture resnet50 --batch_size 8 --threads 2
    python scripts/benchmark_fidelity.py --source torchvision   # torchvision ResNet50 instead
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from wsol.metrics.fidelity import DEFAULT_NUM_STEPS, METRICS, FidelityMeter, predicted_classes  # noqa: E402


class LogitsDict(nn.Module):
    """Wraps a plain classifier so that its forward returns ``{"logits": (B, K)}``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Images (B, 3, H, W) → ``{"logits": (B, K)}``."""
        return {"logits": self.model(x)}


class PooledLinear(nn.Module):
    """Near-free two-head stand-in (channel means → linear) that isolates the metrics' own cost."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(3, num_classes)
        self.fc2 = nn.Linear(3, num_classes)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Images (B, 3, H, W) → ``{"logits", "logits2"}``, each (B, K)."""
        pooled = x.mean(dim=(2, 3))
        return {"logits": self.fc(pooled), "logits2": self.fc2(pooled)}


def build(args: argparse.Namespace) -> nn.Module:
    """The benchmarked model in eval mode, randomly initialised."""
    if args.source == "build_model":
        from wsol.models.registry import build_model

        model = build_model(args.architecture, args.family, args.num_classes,
                            model_structure=args.model_structure)
    else:
        import torchvision

        extra = {}
        if args.architecture == "inception_v3":
            extra = {"aux_logits": False, "init_weights": True}
        model = LogitsDict(torchvision.models.get_model(args.architecture, weights=None,
                                                        num_classes=args.num_classes, **extra))
    return model.eval()


def smooth_heatmaps(batch: int, size: int, generator: torch.Generator) -> Tensor:
    """Random (B, size, size) maps in [0, 1]: bilinear upsampling of 7×7 noise, min–max scaled."""
    coarse = torch.rand(batch, 1, 7, 7, generator=generator)
    maps = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    flat = maps.flatten(1)
    low, high = flat.min(dim=1, keepdim=True).values, flat.max(dim=1, keepdim=True).values
    return ((flat - low) / (high - low)).view_as(maps)


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Shortest wall time of ``repeats`` calls of ``fn`` (least disturbed by other load)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", choices=("build_model", "torchvision"), default="build_model",
                        help="wsol.models.registry.build_model (default) or a torchvision "
                        "classifier")
    parser.add_argument("--architecture", default="resnet50",
                        choices=("vgg16", "resnet50", "inception_v3"))
    parser.add_argument("--family", default="cam", choices=("cam", "grad"))
    parser.add_argument("--model_structure", default="b2", choices=("vanilla", "b2"))
    parser.add_argument("--num_classes", type=int, default=200)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--num_steps", type=int, default=DEFAULT_NUM_STEPS)
    parser.add_argument("--protocol", default="authors", choices=("authors", "softmax_head"))
    parser.add_argument("--warmup", type=int, default=3, help="untimed forwards before timing")
    parser.add_argument("--forward_repeats", type=int, default=3,
                        help="timed repeats of the bare forward and of the cheap metrics")
    parser.add_argument("--curve_repeats", type=int, default=1,
                        help="timed repeats of insertion and deletion")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--device", default="cpu")
    return parser.parse_args()


def main() -> None:
    """Time a bare forward and each metric; print a Markdown table."""
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = build(args).to(device)
    generator = torch.Generator().manual_seed(0)
    size = args.image_size
    images = torch.randn(args.batch_size, 3, size, size, generator=generator).to(device)
    heatmaps = smooth_heatmaps(args.batch_size, size, generator).to(device)
    with torch.no_grad():
        outputs = model(images)
    targets = predicted_classes(outputs)

    def forward() -> None:
        with torch.no_grad():
            model(images)

    for _ in range(args.warmup):
        forward()
    forward_s = best_seconds(forward, args.forward_repeats)
    per_image = 1000.0 * forward_s / args.batch_size
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, device {device}, threads {torch.get_num_threads()}, "
          f"load average at start {os.getloadavg()[0]:.1f}")
    if args.source == "build_model":
        described = (f"build_model({args.architecture!r}, {args.family!r}, {args.num_classes}, "
                     f"model_structure={args.model_structure!r})")
    else:
        described = f"torchvision {args.architecture} (one head), K={args.num_classes}"
    print(f"model: {described}; batch {args.batch_size}, {size}x{size}; "
          f"protocol {args.protocol}; num_steps {args.num_steps}")
    print()
    print("| metric | forwards / batch | ms / image | x bare forward | "
          "metric code alone, ms / image |")
    print("|---|---:|---:|---:|---:|")
    print(f"| bare forward | 1 | {per_image:.1f} | 1.00 | – |")
    free_model = PooledLinear(args.num_classes).eval().to(device)
    forwards = {"avg_drop": 2, "increase_in_confidence": 2,
                "deletion_auc": 1 + args.num_steps, "insertion_auc": 1 + args.num_steps}
    for name in METRICS:
        meter = FidelityMeter(args.protocol, [name], num_steps=args.num_steps)
        repeats = args.curve_repeats if name.endswith("_auc") else args.forward_repeats
        seconds = best_seconds(lambda meter=meter: meter.update(model, images, heatmaps, targets),
                               repeats)
        free_seconds = best_seconds(
            lambda meter=meter: meter.update(free_model, images, heatmaps, targets), repeats)
        metric_ms = 1000.0 * seconds / args.batch_size
        free_ms = 1000.0 * free_seconds / args.batch_size
        print(f"| {name} | {forwards[name]} | {metric_ms:.1f} | {metric_ms / per_image:.2f} | "
              f"{free_ms:.2f} |")
    print()
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
