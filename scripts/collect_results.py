"""Collect evaluation results into the paper's table layout (markdown).

Reads every `results_*.json` written by `main.py --eval_only` in the given experiment folders (or
below them) and prints one table per dataset and split. Each row names the backbone and the CAM
method; the sigmoid branch (model_structure b2) reads "<method> + Ours" and shows, in
parentheses, its change from the vanilla row of the same backbone and method evaluated on the same
images (same split, image count, `--max_images` and skipped images). Runs on other images get no
change. A run limited by `--max_images` is marked with † and its image count. Box datasets show
Top-1 Cls, Top-1 Loc, GT-known Loc and MaxBoxAccV2; mask datasets Top-1 Cls and PxAP.

With `--over_seeds`, runs that differ only in their seed (and experiment folder) form one row,
"mean ± std" over the seeds; the change is then the mean ± std of the per-seed changes when both
rows hold the same seeds.

Usage::

    python scripts/collect_results.py experiment/CUB [more folders ...] [--output table.md]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from wsol.engine.files import write_text_atomic
from wsol.models.registry import get_backbone

METHODS = {"cam": "CAM", "gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++",
           "xgradcam": "XGradCAM", "layercam": "LayerCAM"}
BOX_COLUMNS = (("Top-1 Cls", "top1_cls"), ("Top-1 Loc", "top1_loc"),
               ("GT-known Loc", "gt_loc"), ("MaxBoxAccV2", "maxboxacc_v2"))
MASK_COLUMNS = (("Top-1 Cls", "top1_cls"), ("PxAP", "PxAP"))
STRUCTURES = ("vanilla", "b2")
PARTIAL_MARK = "†"


@dataclass(frozen=True)
class ImageSet:
    """What decides which images a run was scored on."""

    dataset_name: str
    split: str
    num_images: int
    max_images: int | None
    num_skipped: int


@dataclass
class Row:
    """One table row: one run, or the runs of several seeds with `--over_seeds`."""

    architecture: str
    method: str
    model_structure: str
    images: ImageSet
    experiment: str
    seeds: list[int]
    metrics: list[dict[str, Any]]


def find_result_files(paths: Sequence[str]) -> list[str]:
    """Every `results_*.json` in the given folders or below them, sorted.

    Raises:
        FileNotFoundError: a path is not a folder.
    """
    files: set[str] = set()
    for path in paths:
        if not os.path.isdir(path):
            raise FileNotFoundError(f"not a folder: {path}")
        files.update(glob.glob(os.path.join(path, "**", "results_*.json"), recursive=True))
    return sorted(files)


def load_record(path: str) -> dict[str, Any]:
    """The settings and metrics of one results file, plus its path.

    Raises:
        ValueError: the file is not JSON or does not hold `settings` and `metrics`.
    """
    with open(path, encoding="utf-8") as handle:
        try:
            results = json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(results, dict) or not {"settings", "metrics"} <= set(results):
        raise ValueError(f"{path}: not a results file of main.py (no 'settings'/'metrics')")
    return {**results["settings"], "metrics": results["metrics"], "path": path}


def image_set(record: dict[str, Any]) -> ImageSet:
    """The images a run was evaluated on, as far as its results file records them."""
    metrics = record["metrics"]
    return ImageSet(record["dataset_name"], record["split"], int(metrics["num_images"]),
                    record.get("max_images"), int(metrics.get("num_skipped_images", 0)))


def backbone_name(architecture: str) -> str:
    """The backbone's display name from the model registry (the raw name if it is unknown)."""
    try:
        return get_backbone(architecture).display_name
    except ValueError:
        return architecture


def build_rows(records: Sequence[dict[str, Any]], over_seeds: bool) -> list[Row]:
    """One row per run, or per run setting over seeds when `over_seeds`.

    Raises:
        ValueError: with `over_seeds`, two runs of one row have the same seed.
    """
    rows: dict[tuple, Row] = {}
    for record in records:
        experiment = os.path.relpath(os.path.dirname(record["path"]))
        key: tuple = (record["architecture"], record["method"], record["model_structure"],
                      image_set(record), _setting_key(record))
        if not over_seeds:
            key += (experiment,)
        row = rows.setdefault(key, Row(record["architecture"], record["method"],
                                       record["model_structure"], image_set(record), experiment,
                                       [], []))
        if record["seed"] in row.seeds:
            raise ValueError(f"--over_seeds: {record['path']} repeats seed {record['seed']} of "
                             f"{row.experiment}; runs of one row must differ in their seed")
        row.seeds.append(record["seed"])
        row.metrics.append(record["metrics"])
    return list(rows.values())


def _setting_key(record: dict[str, Any]) -> tuple:
    """Evaluation settings other than the seed and the folders: rows never mix them."""
    ignored = {"seed", "experiment_name", "log_folder", "checkpoint", "metrics", "path",
               "architecture", "method", "model_structure", "dataset_name", "split",
               "max_images"}
    return tuple(sorted((name, json.dumps(value)) for name, value in record.items()
                        if name not in ignored))


def _values(row: Row, key: str) -> list[float] | None:
    values = [metrics.get(key) for metrics in row.metrics]
    return None if any(value is None for value in values) else values


def _mean_std(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _signed(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:+.2f}"
    return f"{statistics.mean(values):+.2f} ± {statistics.stdev(values):.2f}"


def _cell(row: Row, key: str, vanilla: Row | None) -> str:
    values = _values(row, key)
    if values is None:
        return "–"
    text = _mean_std(values)
    reference = None if vanilla is None or key == "top1_cls" else _values(vanilla, key)
    if reference is None:
        return text
    if sorted(row.seeds) == sorted(vanilla.seeds):
        by_seed = dict(zip(vanilla.seeds, reference))
        change = _signed([value - by_seed[seed] for seed, value in zip(row.seeds, values)])
    else:
        change = f"{statistics.mean(values) - statistics.mean(reference):+.2f}"
    return f"{text} ({change})"


def _partner(row: Row, rows: Sequence[Row]) -> Row | None:
    """The vanilla row of the same backbone and method on the same images, if unambiguous."""
    candidates = [other for other in rows if other.model_structure == "vanilla"
                  and (other.architecture, other.method, other.images)
                  == (row.architecture, row.method, row.images)]
    if len(candidates) > 1:
        candidates = [other for other in candidates if sorted(other.seeds) == sorted(row.seeds)]
    return candidates[0] if len(candidates) == 1 else None


def _label(row: Row, rows: Sequence[Row]) -> str:
    label = METHODS.get(row.method, row.method)
    if row.model_structure == "b2":
        label += " + Ours"
    twins = [other for other in rows if (other.architecture, other.method, other.model_structure,
                                         other.images.num_images)
             == (row.architecture, row.method, row.model_structure, row.images.num_images)]
    return f"{label} ({row.experiment})" if len(twins) > 1 else label


def _images(row: Row) -> str:
    count = str(row.images.num_images)
    return f"{count} {PARTIAL_MARK}" if row.images.max_images is not None else count


def _sort_key(row: Row) -> tuple:
    methods = list(METHODS)
    return (row.architecture, methods.index(row.method) if row.method in methods else len(methods),
            STRUCTURES.index(row.model_structure), -row.images.num_images, row.experiment)


def format_tables(rows: Sequence[Row], over_seeds: bool = False) -> str:
    """Markdown tables, one per dataset and split, vanilla rows followed by their branch rows."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.images.dataset_name, row.images.split), []).append(row)
    blocks = []
    for (dataset, split), group in sorted(groups.items()):
        columns = MASK_COLUMNS if _values(group[0], "PxAP") is not None else BOX_COLUMNS
        extra = ["Images"] + (["Seeds"] if over_seeds else [])
        header = ["Backbone", "Method", *extra, *(name for name, _ in columns)]
        lines = [f"### {dataset} ({split})", "", "| " + " | ".join(header) + " |",
                 "|" + "---|" * len(header)]
        for row in sorted(group, key=_sort_key):
            vanilla = _partner(row, group) if row.model_structure == "b2" else None
            cells = [backbone_name(row.architecture), _label(row, group), _images(row)]
            if over_seeds:
                cells.append(str(len(row.seeds)))
            cells += [_cell(row, key, vanilla) for _, key in columns]
            lines.append("| " + " | ".join(cells) + " |")
        if any(row.images.max_images is not None for row in group):
            lines += ["", f"{PARTIAL_MARK} partial evaluation: the first images of the split "
                      "only (`--max_images`)."]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Print (or write) the tables of the results found under the given folders."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="experiment folders or roots to search")
    parser.add_argument("--output", default=None, help="also write the tables to this file")
    parser.add_argument("--over_seeds", action="store_true",
                        help="one row per setting: mean ± std over runs that differ in the seed")
    args = parser.parse_args(argv)
    try:
        records = [load_record(path) for path in find_result_files(args.folders)]
        if not records:
            raise FileNotFoundError(f"no results_*.json under {', '.join(args.folders)}")
        table = format_tables(build_rows(records, args.over_seeds), args.over_seeds)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(table, end="")
    if args.output:
        write_text_atomic(args.output, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
