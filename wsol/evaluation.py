"""``python -m wsol.evaluation``: evaluate score maps saved as ``{scoremap_root}/{image_id}.npy``.

The command line around :mod:`wsol.metrics.evaluation`: reads the metadata, the optional image-id
list and ``image_id,0|1`` prediction file, evaluates in a worker pool and writes the results JSON
atomically. Torch is not imported.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable

from wsol.data.metadata import NUM_CLASSES, dataset_folder, load_metadata, read_image_ids
from wsol.engine.files import write_json_atomic
from wsol.engine.flags import str2bool
from wsol.engine.terminal import on_terminal
from wsol.metrics.evaluation import build_evaluator, evaluate_scoremaps

__all__ = ["main", "read_pred_correct"]


def read_pred_correct(path: str) -> dict[str, bool]:
    """Read a ``image_id,0|1`` CSV; errors name the file and line."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--pred_correct file not found: {path}")
    result: dict[str, bool] = {}
    with open(path, "rb") as handle:
        data = handle.read()
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError as error:
            raise ValueError(f"{path}, line {number}: not UTF-8 text ({error.reason})") from None
        if not line:
            continue
        fields = line.rsplit(",", 1)
        if len(fields) != 2 or fields[1] not in ("0", "1"):
            raise ValueError(f"{path}, line {number}: expected 'image_id,0' or "
                             f"'image_id,1', found {line!r}")
        result[fields[0]] = fields[1] == "1"
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wsol.evaluation",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Evaluate saved score maps ({scoremap_root}/{image_id}.npy) with the WSOL "
                    "metrics: MaxBoxAccV2, MaxBoxAcc, GT-known and Top-1 Loc, or PxAP.")
    parser.add_argument("--scoremap_root", required=True,
                        help="folder of the score maps: 224x224 float32/float64 .npy files "
                             "with values in [0, 1], named {image_id}.npy")
    parser.add_argument("--metadata_root", required=True,
                        help="folder holding {dataset_name}/{split}/ metadata")
    parser.add_argument("--dataset_name", required=True, choices=sorted(NUM_CLASSES),
                        help="dataset of the score maps (OpenImages is evaluated with masks)")
    parser.add_argument("--split", required=True, choices=["train", "val", "test"],
                        help="metadata split the image ids belong to")
    parser.add_argument("--mask_root", default="dataset/",
                        help="mask datasets: masks are read from "
                             "{mask_root}/{dataset_name}/{mask_path}, as in main.py")
    parser.add_argument("--image_ids", default=None,
                        help="text file of image ids to evaluate, one a line (default: the "
                             "whole split)")
    parser.add_argument("--pred_correct", default=None,
                        help="CSV 'image_id,0|1' (1: head-1 prediction right); adds Top-1 Loc")
    parser.add_argument("--cam_curve_interval", type=float, default=0.001,
                        help="step between the score-map thresholds")
    parser.add_argument("--box_v2_metric", type=str2bool, nargs="?", const=True, default=True,
                        help="true: MaxBoxAccV2 (all contours, mean over the IoU thresholds); "
                             "false: MaxBoxAcc(50) of the largest contour, also written as "
                             "maxboxacc_v2 as the authors do (SPEC 7.5)")
    parser.add_argument("--iou_threshold_list", type=int, nargs="+", default=[30, 50, 70],
                        help="IoU thresholds (percent) of MaxBoxAcc; must contain 50")
    parser.add_argument("--loc_threshold", type=float, default=0.2,
                        help="score-map threshold of GT-known and Top-1 Loc; must be one of the "
                             "thresholds")
    parser.add_argument("--threshold_rule", choices=["authors", "wsolevaluation"],
                        default="authors",
                        help="thresholds round(j*interval, 3) including 1.0 (authors), or "
                             "numpy.arange(0, 1, interval) (wsolevaluation)")
    parser.add_argument("--pxap_histogram_dtype", choices=["float64", "float32"],
                        default="float64",
                        help="PxAP accumulators: exact counts, or the authors' float32 "
                             "(SPEC A13)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes evaluating the maps in parallel")
    parser.add_argument("--output", required=True,
                        help="results JSON file to write (atomically)")
    return parser


def main(argv: Iterable[str] | None = None) -> int:
    """Command-line entry point; writes the results JSON atomically.

    Bad input (metadata, ids, pred_correct, score maps, masks) exits with ``error: <message>``
    naming the file; nothing is written then.
    """
    args = _parser().parse_args(None if argv is None else list(argv))
    try:
        return _run(args)
    except (ValueError, OSError) as error:  # MetadataError and ScoreMapError are ValueErrors
        raise SystemExit(f"error: {error}") from None


def _run(args: argparse.Namespace) -> int:
    """Evaluate as ``args`` say and write ``args.output``."""
    metadata = load_metadata(args.metadata_root, args.dataset_name, args.split)
    image_ids = metadata.image_ids
    if args.image_ids:
        image_ids = read_image_ids(args.image_ids)
        if not image_ids:
            raise SystemExit(f"error: {args.image_ids}: no image ids to evaluate")
        unknown = [i for i in image_ids if i not in metadata.class_labels]
        if unknown:
            raise SystemExit(f"error: {args.image_ids}: {len(unknown)} ids are not in the "
                             f"{args.dataset_name}/{args.split} metadata, e.g. {unknown[:3]}")
    pred_correct = read_pred_correct(args.pred_correct) if args.pred_correct else None
    if pred_correct is not None:
        absent = [i for i in image_ids if i not in pred_correct]
        if absent:
            raise SystemExit(f"error: {args.pred_correct}: no entry for {len(absent)} image ids, "
                             f"e.g. {absent[:3]}")
    evaluator = build_evaluator(
        metadata, cam_curve_interval=args.cam_curve_interval,
        iou_threshold_list=args.iou_threshold_list, box_v2_metric=args.box_v2_metric,
        loc_threshold=args.loc_threshold,
        mask_root=dataset_folder(args.mask_root, args.dataset_name),
        threshold_rule=args.threshold_rule, pxap_histogram_dtype=args.pxap_histogram_dtype)
    results = evaluate_scoremaps(evaluator, args.scoremap_root, image_ids, pred_correct,
                                 workers=args.workers, progress=on_terminal())
    results["settings"] = {**evaluator.config, "dataset_name": args.dataset_name,
                           "split": args.split, "scoremap_root": args.scoremap_root}
    write_json_atomic(args.output, results)
    headline = {k: v for k, v in results.items() if not isinstance(v, dict)}
    print(json.dumps(headline, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
