"""Evaluation throughput with 1 and 2 processes (`torchrun`) on a synthetic split.

Generates a synthetic dataset, saves an untrained ResNet50 b2 checkpoint, then evaluates it with
`torchrun --standalone --nproc_per_node N main.py --eval_only ...` for each N and prints the
images per second of the evaluation pass (slowest process, from `results_{method}.json`), the
wall time of the whole launch and the speed-up over one process. It also checks that every
metric is the same for every N.

    OMP_NUM_THREADS=1 python scripts/benchmark_distributed_eval.py --num_test 48 --processes 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_test", type=int, default=48, help="synthetic test images")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--method", default="cam", choices=["cam", "gradcam"])
    parser.add_argument("--batch_size", type=int, default=8, help="images per batch and process")
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or auto (NCCL on GPUs)")
    parser.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    parser.add_argument("--workdir", default=None, help="folder for data and runs (default: a "
                        "temporary folder)")
    return parser


def _run(command: list[str]) -> float:
    """Run `command` in the repository with one intra-op thread; return its wall time."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def _common(root: Path, args: argparse.Namespace) -> list[str]:
    return ["--dataset_name", "SYNTHETIC", "--data_root", str(root / "dataset"),
            "--metadata_root", str(root / "metadata"), "--mask_root", str(root / "dataset"),
            "--root", str(root / "runs"), "--architecture", "resnet50", "--workers", "0",
            "--device", args.device, "--method", args.method]


def _prepare(root: Path, args: argparse.Namespace) -> Path:
    """Synthetic data and an untrained b2 checkpoint (`--epochs 0`)."""
    _run([sys.executable, "-m", "wsol.data.synthetic", "--data_root", str(root / "dataset"),
          "--metadata_root", str(root / "metadata"), "--num_train", "4", "--num_val", "0",
          "--num_test", str(args.num_test), "--image_size", "96", "--overwrite"])
    _run([sys.executable, "main.py", *_common(root, args), "--experiment_name", "model",
          "--model_structure", "b2", "--unfreeze_layer", "all", "--epochs", "0",
          "--pretrained", "false", "--override_cache"])
    return root / "runs" / "model" / "last_checkpoint.pth.tar"


def _evaluate(root: Path, checkpoint: Path, processes: int,
              args: argparse.Namespace) -> tuple[dict, float]:
    name = f"eval_{processes}"
    wall = _run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 "--nproc_per_node", str(processes), "main.py", *_common(root, args),
                 "--experiment_name", name, "--eval_only", "--model_structure", "b2",
                 "--ft_ckpt", str(checkpoint), "--batch_size", str(args.batch_size),
                 "--num_overlays", "0", "--amp", args.amp, "--override_cache"])
    results = json.loads((root / "runs" / name / f"results_{args.method}.json").read_text())
    return results, wall


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one row per process count."""
    args = _parser().parse_args(argv)
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(args.workdir or temporary)
        checkpoint = _prepare(root, args)
        print(f"{args.num_test} images, {args.method}, batch {args.batch_size} per process, "
              f"device {args.device}, amp {args.amp}, OMP_NUM_THREADS="
              f"{os.environ.get('OMP_NUM_THREADS', '1')}")
        print("| processes | pass (s) | images/s | launch wall (s) | speed-up (pass) |")
        print("|---|---|---|---|---|")
        baseline = None
        reference = None
        for processes in args.processes:
            results, wall = _evaluate(root, checkpoint, processes, args)
            speed = results["timing"]["images_per_second"]
            baseline = baseline or speed
            reference = reference or results["metrics"]
            if results["metrics"] != reference:
                raise RuntimeError(f"metrics with {processes} processes differ: "
                                   f"{results['metrics']} vs {reference}")
            print(f"| {processes} | {results['timing']['seconds']:.2f} | {speed:.2f} | "
                  f"{wall:.1f} | {speed / baseline:.2f}x |")
        print("metrics identical for every process count:", json.dumps(reference))
    return 0


if __name__ == "__main__":
    sys.exit(main())
