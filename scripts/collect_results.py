"""Collect evaluation results into the paper's table layout (markdown).

Reads every `results_*.json` written by `main.py --eval_only` in the given experiment folders (or
below the given roots) and prints one table per dataset and split: a row per backbone and CAM
method for the vanilla model, followed by "+ Ours" for the sigmoid branch (model_structure b2)
with the change from the vanilla row in parentheses. Box datasets show Top-1 Cls, Top-1 Loc,
GT-known Loc and MaxBoxAccV2; mask datasets Top-1 Cls and PxAP.

Usage::

    python scripts/collect_results.py experiment/CUB [more folders ...] [--output table.md]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

ARCHITECTURES = {"vgg16": "VGG16", "resnet50": "ResNet50", "inception_v3": "InceptionV3"}
METHODS = {"cam": "CAM", "gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++",
           "xgradcam": "XGradCAM", "layercam": "LayerCAM"}
BOX_COLUMNS = (("Top-1 Cls", "top1_cls"), ("Top-1 Loc", "top1_loc"),
               ("GT-known Loc", "gt_loc"), ("MaxBoxAccV2", "maxboxacc_v2"))
MASK_COLUMNS = (("Top-1 Cls", "top1_cls"), ("PxAP", "PxAP"))
STRUCTURES = ("vanilla", "b2")


def find_result_files(paths: Sequence[str]) -> list[str]:
    """Every `results_*.json` in the given folders or below them, sorted.

    Raises:
        FileNotFoundError: a path does not exist.
    """
    files: set[str] = set()
    for path in paths:
        if not os.path.isdir(path):
            raise FileNotFoundError(f"not a folder: {path}")
        files.update(glob.glob(os.path.join(path, "**", "results_*.json"), recursive=True))
    return sorted(files)


def load_record(path: str) -> dict[str, Any]:
    """The settings and metrics of one results file.

    Raises:
        ValueError: the file does not hold `settings` and `metrics`.
    """
    with open(path, encoding="utf-8") as handle:
        results = json.load(handle)
    if not isinstance(results, dict) or not {"settings", "metrics"} <= set(results):
        raise ValueError(f"{path}: not a results file of main.py (no 'settings'/'metrics')")
    return {**results["settings"], "metrics": results["metrics"], "path": path}


def _sort_key(record: dict[str, Any]) -> tuple[int, int, int, str]:
    return (list(ARCHITECTURES).index(record["architecture"]),
            list(METHODS).index(record["method"]),
            STRUCTURES.index(record["model_structure"]), record["path"])


def _cell(value: float | None, reference: float | None) -> str:
    if value is None:
        return "–"
    if reference is None:
        return f"{value:.2f}"
    return f"{value:.2f} ({value - reference:+.2f})"


def _row(record: dict[str, Any], columns: Sequence[tuple[str, str]],
         vanilla: dict[str, Any] | None) -> str:
    label = METHODS[record["method"]] if record["model_structure"] == "vanilla" else "+ Ours"
    cells = []
    for _, key in columns:
        value = record["metrics"].get(key)
        reference = vanilla["metrics"].get(key) if vanilla and key != "top1_cls" else None
        cells.append(_cell(value, reference))
    return f"| {ARCHITECTURES[record['architecture']]} | {label} | " + " | ".join(cells) + " |"


def format_table(records: list[dict[str, Any]]) -> str:
    """Markdown tables, one per dataset and split, in the paper's row order."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["dataset_name"], record["split"]), []).append(record)
    blocks = []
    for (dataset, split), group in sorted(groups.items()):
        columns = MASK_COLUMNS if "PxAP" in group[0]["metrics"] else BOX_COLUMNS
        lines = [f"### {dataset} ({split})", "",
                 "| Backbone | Method | " + " | ".join(name for name, _ in columns) + " |",
                 "|---|---|" + "---|" * len(columns)]
        vanilla_rows = {(r["architecture"], r["method"]): r for r in group
                        if r["model_structure"] == "vanilla"}
        for record in sorted(group, key=_sort_key):
            vanilla = None if record["model_structure"] == "vanilla" else vanilla_rows.get(
                (record["architecture"], record["method"]))
            lines.append(_row(record, columns, vanilla))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Print (or write) the tables of the results found under the given folders."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="experiment folders or roots to search")
    parser.add_argument("--output", default=None, help="also write the tables to this file")
    args = parser.parse_args(argv)
    try:
        records = [load_record(path) for path in find_result_files(args.folders)]
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if not records:
        print(f"error: no results_*.json under {', '.join(args.folders)}", file=sys.stderr)
        return 1
    table = format_table(records)
    print(table, end="")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
