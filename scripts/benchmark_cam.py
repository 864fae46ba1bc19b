r"""Throughput of the CAM methods against the grad-cam package and against bare passes.

Usage::

    python scripts/benchmark_cam.py --device cpu --architecture resnet50 --family grad \
        --batch_size 8 --size 224 --reps 3

For one model and one random batch it times, per batch (median over `--reps` rounds; every round
runs every configuration once, so load on the machine affects all of them alike):

* `forward`: one forward pass without autograd;
* `forward+backward (to layer)`: one forward and `autograd.grad` of the score with respect to the
  target layer's output — the least work any gradient method needs;
* `forward+backward (full)`: one forward and `.backward()` into every parameter's `.grad`;
* per method, `compute_heatmaps` with the OpenCV and the torch post-processing, and the grad-cam
  package (`pytorch_grad_cam`, same model, batch, layer and targets; 224×224 output as well).

It prints a Markdown table of heatmaps per second, the speed-up over the package and the overhead
of `compute_heatmaps` over forward+backward (to layer).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM, XGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cam import compute_heatmaps  # noqa: E402
from wsol.models.registry import ARCHITECTURES, FAMILIES, MODEL_STRUCTURES, build_model  # noqa: E402

PACKAGE = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
}


class LogitsOf(nn.Module):
    """The model's output dict reduced to one logits tensor, for the package."""

    def __init__(self, model: nn.Module, key: str) -> None:
        super().__init__()
        self.model = model
        self.key = key

    def forward(self, x: Tensor) -> Tensor:
        """Return the selected logits, (B, K)."""
        return self.model(x)[self.key]


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--architecture", choices=ARCHITECTURES, default="resnet50")
    parser.add_argument("--family", choices=FAMILIES, default="grad")
    parser.add_argument("--model_structure", choices=MODEL_STRUCTURES, default="vanilla")
    parser.add_argument("--num_classes", type=int, default=200)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: elapsed time; cpu: this process's CPU time (CPU runs on a shared machine, "
        "with --threads 1, where elapsed time mostly measures the other processes)",
    )
    parser.add_argument("--methods", nargs="+", choices=tuple(PACKAGE), default=tuple(PACKAGE))
    args = parser.parse_args()
    if args.clock == "cpu" and torch.device(args.device).type != "cpu":
        parser.error("--clock cpu measures CPU runs only")
    return args


def build_cases(
    model: nn.Module, images: Tensor, labels: Tensor, key: str, methods: list[str]
) -> dict[str, Callable[[], object]]:
    """The timed configurations, by name, in the order they run within a round."""
    layer = model.get_submodule(model.cam_layer)
    wrapper = LogitsOf(model, key).eval()
    targets = [ClassifierOutputTarget(int(label)) for label in labels]

    def forward() -> None:
        with torch.no_grad():
            model(images)

    def backward_to_layer() -> None:
        captured = []
        handle = layer.register_forward_hook(lambda module, inputs, output: captured.append(output))
        try:
            with torch.enable_grad():
                scores = model(images.clone().requires_grad_(True))[key]
                torch.autograd.grad(scores.gather(1, labels[:, None]).sum(), captured[0])
        finally:
            handle.remove()

    def backward_full() -> None:
        model.zero_grad()
        model(images)[key].gather(1, labels[:, None]).sum().backward()

    def ours(method: str, backend: str) -> Callable[[], object]:
        return lambda: compute_heatmaps(model, images, labels, method, postprocess=backend)

    def package(method: str) -> Callable[[], object]:
        def run() -> None:
            with PACKAGE[method](model=wrapper, target_layers=[layer]) as explainer:
                explainer(input_tensor=images, targets=targets)

        return run

    cases: dict[str, Callable[[], object]] = {
        "forward": forward,
        "forward+backward (to layer)": backward_to_layer,
        "forward+backward (full)": backward_full,
    }
    for method in methods:
        cases[f"{method} ours (opencv)"] = ours(method, "opencv")
        cases[f"{method} ours (torch)"] = ours(method, "torch")
        cases[f"{method} grad-cam package"] = package(method)
    return cases


def measure(
    cases: dict[str, Callable[[], object]], reps: int, device: torch.device, clock: str
) -> dict[str, float]:
    """Median seconds per call: one warm-up round, then `reps` rounds over all cases."""
    now = time.process_time if clock == "cpu" else time.perf_counter

    def seconds(fn: Callable[[], object]) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = now()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return now() - start

    for fn in cases.values():
        seconds(fn)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(reps):
        for name, fn in cases.items():
            times[name].append(seconds(fn))
    return {name: statistics.median(values) for name, values in times.items()}


def report(median: dict[str, float], args: argparse.Namespace, device: torch.device) -> None:
    """Print the Markdown table."""
    base = median["forward+backward (to layer)"]
    print(
        f"device={device} ({torch.get_num_threads()} threads), torch {torch.__version__}, "
        f"{args.architecture}/{args.family}/{args.model_structure}, K={args.num_classes}, "
        f"batch {args.batch_size} at {args.size}px, median of {args.reps} rounds, "
        f"{args.clock} clock\n"
    )
    print(
        "| configuration | s / batch | heatmaps / s | vs package | overhead vs fwd+bwd (to layer) |"
    )
    print("|---|---|---|---|---|")
    for name, secs in median.items():
        method = name.split(" ")[0]
        package_time = median.get(f"{method} grad-cam package")
        speedup = f"{package_time / secs:.2f}x" if "ours" in name and package_time else ""
        overhead = f"{100 * (secs - base) / base:+.1f}%" if method in PACKAGE else ""
        print(f"| {name} | {secs:.3f} | {args.batch_size / secs:.1f} | {speedup} | {overhead} |")


def main() -> None:
    """Build the model and batch, time every configuration, print the table."""
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model(
        args.architecture, args.family, args.num_classes, model_structure=args.model_structure
    )
    model = model.to(device).eval()
    key = "logits2" if args.model_structure == "b2" else "logits"
    images = torch.randn(args.batch_size, 3, args.size, args.size, device=device)
    labels = torch.randint(0, args.num_classes, (args.batch_size,), device=device)
    cases = build_cases(model, images, labels, key, list(args.methods))
    report(measure(cases, args.reps, device, args.clock), args, device)


if __name__ == "__main__":
    main()
