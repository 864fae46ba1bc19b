"""Cost of the sigmoid branch: parameters and inference time of b2 over vanilla, per model.

For each network the vanilla and the b2 model are built (untrained; nothing is read or
downloaded) and share their backbone and head-1 weights. Forward passes of the two are timed
alternately on the same random batch, ``--reps`` times each, in eval mode under
``torch.inference_mode``; the table reports the medians and their ratio. For the CAM family the
forward that computes the CAMs of the given classes (``return_cam=True``, as evaluation runs it)
is timed as well.

Usage (from the repository root)::

    python scripts/benchmark_models.py --device cpu --batch_size 2 --reps 7 --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch import Tensor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from wsol.models.registry import build_model

NETWORKS = (
    ("vgg16", "cam"),
    ("resnet50", "cam"),
    ("inception_v3", "cam"),
    ("vgg16", "grad"),
    ("inception_v3", "grad"),
)


def parse_args() -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--reps", type=int, default=7, help="timed passes per model")
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes per model")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--num_classes", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    return parser.parse_args()


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters."""
    return sum(param.numel() for param in model.parameters())


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def paired_medians(
    first: Callable[[], object], second: Callable[[], object], reps: int, device: torch.device
) -> tuple[float, float]:
    """Median seconds of two calls timed alternately (the order swaps every repetition)."""
    times: dict[int, list[float]] = {0: [], 1: []}
    calls = (first, second)
    for rep in range(reps):
        for index in (0, 1) if rep % 2 == 0 else (1, 0):
            _synchronize(device)
            start = time.perf_counter()
            calls[index]()
            _synchronize(device)
            times[index].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def benchmark(
    architecture: str, family: str, args: argparse.Namespace, device: torch.device
) -> list[str]:
    """Table rows for one network."""
    torch.manual_seed(0)
    vanilla = build_model(architecture, family, args.num_classes)
    b2 = build_model(architecture, family, args.num_classes, model_structure="b2")
    b2.load_state_dict(vanilla.state_dict(), strict=False)
    vanilla.to(device).eval()
    b2.to(device).eval()
    extra = count_parameters(b2) - count_parameters(vanilla)
    share = 100.0 * extra / count_parameters(vanilla)

    images = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    labels = torch.randint(args.num_classes, (args.batch_size,), device=device)
    modes: list[tuple[str, Callable[[torch.nn.Module], dict[str, Tensor]]]] = [
        ("forward", lambda model: model(images)),
    ]
    if family == "cam":
        modes.append(("forward + CAMs", lambda model: model(images, labels, return_cam=True)))

    rows = []
    with torch.inference_mode():
        for mode, run in modes:
            for _ in range(args.warmup):
                run(vanilla)
                run(b2)
            seconds_vanilla, seconds_b2 = paired_medians(
                lambda run=run: run(vanilla), lambda run=run: run(b2), args.reps, device
            )
            ratio = seconds_b2 / seconds_vanilla
            rows.append(
                f"| {architecture} | {family} | {mode} | {count_parameters(vanilla):,} | "
                f"{extra:,} ({share:.3f}%) | {1e3 * seconds_vanilla:.1f} | "
                f"{1e3 * seconds_b2:.1f} | {ratio:.3f} ({100 * (ratio - 1):+.1f}%) |"
            )
    return rows


def main() -> None:
    """Print the table."""
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, device "
        f"{device}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
        f"{args.image_size}x{args.image_size}, K={args.num_classes}, {args.reps} paired reps "
        f"after {args.warmup} warm-up"
    )
    print()
    print("| model | family | timed call | params vanilla | + sigmoid branch | vanilla ms "
          "| b2 ms | b2 / vanilla |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for architecture, family in NETWORKS:
        for row in benchmark(architecture, family, args, device):
            print(row, flush=True)


if __name__ == "__main__":
    main()
