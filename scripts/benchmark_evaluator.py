"""Benchmark: the box evaluator against the contour-tracing evaluator and the authors', one run.

On the four public box sets of ``tests/fixtures/wsol_reference`` at ``cam_curve_interval`` 0.001
with MaxBoxAccV2, GT-known and Top-1 Loc, three evaluators count the same maps:

* ``authors``: ``scripts/literal_evaluator.py``, the authors' per-threshold loop;
* ``contours``: :class:`ContourBoxEvaluator` below, the previous ``BoxEvaluator`` (one
  ``cv2.findContours`` per distinct binary image), kept here as the baseline;
* ``tree``: ``wsol.metrics.evaluation.BoxEvaluator`` (component trees, no contour tracing), with
  1 and 2 worker processes.

Every evaluator reads the ``.npy`` maps from disk inside the timed loop, through the same
reading code. The script checks that every counter is identical, then prints milliseconds per
image and the ratios. The authors' evaluator runs once per set (it is 20-60 times slower, so
its noise does not move a ratio); the others run ``--rounds`` times, interleaved, and each keeps
its fastest round, so that a burst of load on a shared machine does not land on one of them.

    python scripts/benchmark_evaluator.py --num_images 100
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from literal_evaluator import AuthorsBoxEvaluator  # noqa: E402

from wsol.data.metadata import load_metadata  # noqa: E402
from wsol.metrics.boxes import boxes_at_thresholds, iou_matrix, quantize  # noqa: E402
from wsol.metrics.component_tree import warm_up  # noqa: E402
from wsol.metrics.evaluation import BoxEvaluator, _validated, evaluate_scoremaps  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "wsol_reference")
SETS = {"cub_test_300": ("CUB", "test"), "ilsvrc_val_300": ("ILSVRC", "val"),
        "ilsvrc_test_300": ("ILSVRC", "test"), "ilsvrc_val_edge_101": ("ILSVRC", "val")}
COUNTERS = ("num_correct", "num_correct_gt_known", "num_correct_top1")


class ContourBoxEvaluator(BoxEvaluator):
    """The previous evaluator: contours traced once per distinct binary image."""

    def image_ious(self, scoremap: np.ndarray, image_id: str) -> dict[str, np.ndarray]:
        scoremap = _validated(scoremap, image_id)
        found = boxes_at_thresholds(quantize(scoremap), self.thresholds)
        ious = iou_matrix(found.boxes, self.gt_boxes(image_id))
        best_multi = np.maximum.reduceat(ious.max(axis=1), found.offsets[:-1])
        single = ious[found.largest]
        return {"multi": best_multi[found.level],
                "single_any": single.max(axis=1)[found.level],
                "single_first": single[:, 0][found.level],
                "num_boxes": np.diff(found.offsets)[found.level]}


def _write_maps(root: str, name: str, num_images: int) -> tuple[list[str], np.ndarray]:
    with np.load(os.path.join(FIXTURES, name + ".npz")) as data:
        ids = [str(i) for i in data["image_ids"][:num_images]]
        maps, correct = data["scoremaps"][:num_images], data["pred_correct"][:num_images]
    for image_id, scoremap in zip(ids, maps):
        path = os.path.join(root, image_id + ".npy")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        np.save(path, scoremap)
    return ids, correct.astype(bool)


def _time_authors(evaluator: BoxEvaluator, root: str, ids: list[str], correct: np.ndarray
                  ) -> tuple[float, AuthorsBoxEvaluator]:
    authors = AuthorsBoxEvaluator(evaluator.thresholds.tolist(), evaluator.iou_threshold_list)
    start = time.perf_counter()
    for image_id, ok in zip(ids, correct):
        scoremap = np.load(os.path.join(root, image_id + ".npy"))
        authors.accumulate(scoremap, evaluator.gt_boxes(image_id), bool(ok))
    return time.perf_counter() - start, authors


def _time(evaluator: BoxEvaluator, root: str, ids: list[str], correct: np.ndarray,
          workers: int) -> float:
    start = time.perf_counter()
    evaluate_scoremaps(evaluator, root, ids, dict(zip(ids, correct.tolist())), workers=workers)
    return time.perf_counter() - start


def _same_counters(evaluator: BoxEvaluator, authors: AuthorsBoxEvaluator) -> bool:
    return all(np.array_equal(getattr(evaluator, key), getattr(authors, key))
               for key in COUNTERS)


def _start_up_seconds() -> float:
    """Seconds a fresh interpreter spends loading the compiled passes from the cache."""
    code = ("import time; start = time.perf_counter(); "
            "from wsol.metrics.component_tree import warm_up; warm_up(); "
            "print(time.perf_counter() - start)")
    finished = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                              text=True, check=True)
    return float(finished.stdout)


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_images", type=int, default=100, help="images per fixture set")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved rounds of the contour and tree evaluators (fastest kept)")
    parser.add_argument("--metadata_root", default=os.path.join(ROOT, "metadata"),
                        help="metadata folder of the fixture sets")
    args = parser.parse_args()
    start = time.perf_counter()
    warm_up()
    print(f"compiled passes ready in {time.perf_counter() - start:.2f} s (first use compiles; "
          f"later processes load the cache: {_start_up_seconds():.2f} s)")
    print(f"{'set':<20} {'images':>6} {'authors ms':>10} {'contours ms':>11} {'tree ms':>8} "
          f"{'vs authors':>10} {'vs contours':>11} {'2 workers ms':>12} {'gain':>5} identical")
    totals = np.zeros(4)
    for name, (dataset, split) in SETS.items():
        metadata = load_metadata(args.metadata_root, dataset, split)
        with tempfile.TemporaryDirectory() as root:
            ids, correct = _write_maps(root, name, args.num_images)
            tree = BoxEvaluator(metadata)
            contours = ContourBoxEvaluator(metadata)
            authors_seconds, authors = _time_authors(tree, root, ids, correct)
            seconds = np.full(3, np.inf)
            identical = True
            for _ in range(args.rounds):
                times = []
                for evaluator, workers in ((contours, 1), (tree, 1), (tree, 2)):
                    times.append(_time(evaluator, root, ids, correct, workers))
                    identical &= _same_counters(evaluator, authors)
                seconds = np.minimum(seconds, times)
            contour_seconds, tree_seconds, two_seconds = seconds
        n = len(ids)
        seconds = np.array([authors_seconds, contour_seconds, tree_seconds, two_seconds])
        totals += seconds
        authors_ms, contour_ms, tree_ms, two_ms = 1000 * seconds / n
        print(f"{name:<20} {n:>6} {authors_ms:>10.1f} {contour_ms:>11.1f} {tree_ms:>8.2f} "
              f"{authors_ms / tree_ms:>9.1f}x {contour_ms / tree_ms:>10.1f}x {two_ms:>12.2f} "
              f"{tree_ms / two_ms:>4.2f}x {identical}")
    print(f"{'all':<20} {'':>6} {'':>10} {'':>11} {'':>8} {totals[0] / totals[2]:>9.1f}x "
          f"{totals[1] / totals[2]:>10.1f}x {'':>12} {totals[2] / totals[3]:>4.2f}x")


if __name__ == "__main__":
    main()
