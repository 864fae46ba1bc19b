"""Benchmark: wsol.metrics.evaluation against the literal per-threshold evaluator, in one run.

Both evaluate the same shipped fixture score maps at ``cam_curve_interval`` 0.001 with
MaxBoxAccV2, GT-known and Top-1 Loc. The script checks that every counter is identical, then
prints seconds per image and the ratios (literal / ours, 1 worker / 2 workers).

    python scripts/benchmark_evaluator.py --num_images 100
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from literal_evaluator import LiteralBoxEvaluator  # noqa: E402

from wsol.metrics.evaluation import BoxEvaluator, evaluate_scoremaps  # noqa: E402
from wsol.data.metadata import load_metadata  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "tests", "fixtures", "wsol_reference")
SETS = {"cub_test_300": ("CUB", "test"), "ilsvrc_val_300": ("ILSVRC", "val"),
        "ilsvrc_test_300": ("ILSVRC", "test")}


def _load(name: str, num_images: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    data = np.load(os.path.join(FIXTURES, name + ".npz"))
    ids = [str(i) for i in data["image_ids"][:num_images]]
    return data["scoremaps"][:num_images], ids, data["pred_correct"][:num_images].astype(bool)


def _time_literal(evaluator: BoxEvaluator, maps: np.ndarray, ids: list[str],
                  correct: np.ndarray) -> tuple[float, LiteralBoxEvaluator]:
    literal = LiteralBoxEvaluator(evaluator.thresholds.tolist(), evaluator.iou_threshold_list)
    start = time.perf_counter()
    for scoremap, image_id, ok in zip(maps, ids, correct):
        literal.accumulate(scoremap, evaluator.gt_boxes(image_id).tolist(), bool(ok))
    return time.perf_counter() - start, literal


def _time_ours(evaluator: BoxEvaluator, root: str, ids: list[str], correct: np.ndarray,
               workers: int) -> float:
    start = time.perf_counter()
    evaluate_scoremaps(evaluator, root, ids, dict(zip(ids, correct.tolist())), workers=workers)
    return time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_images", type=int, default=100, help="images per fixture set")
    parser.add_argument("--metadata_root", default="metadata")
    args = parser.parse_args()
    print(f"{'set':<16} {'images':>6} {'literal s/img':>13} {'ours s/img':>10} {'ratio':>7} "
          f"{'2 workers s/img':>15} {'gain':>5} identical")
    totals = np.zeros(3)
    for name, (dataset, split) in SETS.items():
        maps, ids, correct = _load(name, args.num_images)
        evaluator = BoxEvaluator(load_metadata(args.metadata_root, dataset, split))
        literal_seconds, literal = _time_literal(evaluator, maps, ids, correct)
        with tempfile.TemporaryDirectory() as root:
            for scoremap, image_id in zip(maps, ids):
                path = os.path.join(root, image_id + ".npy")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                np.save(path, scoremap)
            one = _time_ours(evaluator, root, ids, correct, workers=1)
            identical = all(np.array_equal(getattr(evaluator, key), getattr(literal, key))
                            for key in ("num_correct", "num_correct_gt_known", "num_correct_top1"))
            two = _time_ours(evaluator, root, ids, correct, workers=2)
        n = len(ids)
        totals += (literal_seconds, one, two)
        print(f"{name:<16} {n:>6} {literal_seconds / n:>13.4f} {one / n:>10.4f} "
              f"{literal_seconds / one:>6.1f}x {two / n:>15.4f} {one / two:>4.2f}x {identical}")
    print(f"{'all':<16} {'':>6} {'':>13} {'':>10} {totals[0] / totals[1]:>6.1f}x {'':>15} "
          f"{totals[1] / totals[2]:>4.2f}x")


if __name__ == "__main__":
    main()
