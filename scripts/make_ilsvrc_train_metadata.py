r"""Write the ILSVRC train metadata from an ImageNet train folder (SPEC §1.3).

The train folder holds one sub-folder per synset (``<wnid>/<file>.JPEG``). Each image becomes
the record ``train/<wnid>/<file>.JPEG`` with the label of its wnid's position in the sorted list
of wnids; ``image_sizes.txt`` and ``localization.txt`` are empty. With ``--proxy_per_class N``
``image_ids_proxy.txt`` lists N seeded random images per class. Records are sorted, one per
line, each line ending with a newline.

Usage::

    python scripts/make_ilsvrc_train_metadata.py --train_root dataset/ILSVRC/train \
        --output metadata/ILSVRC/train [--proxy_per_class N] [--seed 0] [--allow_partial]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections.abc import Sequence

__all__ = ["IMAGE_EXTENSIONS", "NUM_WNIDS", "build_records", "choose_proxy", "list_wnids",
           "main", "write_metadata"]

NUM_WNIDS = 1000
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
ID_PREFIX = "train"
OUTPUT_FILES = ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt",
                "image_ids_proxy.txt")

Records = dict[str, list[str]]


def list_wnids(train_root: str, allow_partial: bool = False) -> list[str]:
    """Return the sorted synset folder names of ``train_root``.

    Raises:
        FileNotFoundError: ``train_root`` is not a folder.
        ValueError: not exactly 1000 synset folders and ``allow_partial`` is False, or none.
    """
    if not os.path.isdir(train_root):
        raise FileNotFoundError(f"ImageNet train folder {train_root} not found (--train_root)")
    wnids = sorted(entry.name for entry in os.scandir(train_root) if entry.is_dir())
    if not wnids:
        raise ValueError(f"{train_root} has no synset folders")
    if len(wnids) != NUM_WNIDS and not allow_partial:
        raise ValueError(f"{train_root} has {len(wnids)} synset folders, expected {NUM_WNIDS}; "
                         f"pass --allow_partial to label a subset")
    return wnids


def _list_images(folder: str) -> list[str]:
    """Sorted image file names of one synset folder."""
    return sorted(entry.name for entry in os.scandir(folder)
                  if entry.is_file() and entry.name.lower().endswith(IMAGE_EXTENSIONS))


def build_records(train_root: str, wnids: Sequence[str]) -> Records:
    """Return ``{wnid: [image_id, ...]}`` with sorted ids ``train/<wnid>/<file>``.

    Raises:
        ValueError: a synset folder holds no image.
    """
    records: Records = {}
    for wnid in wnids:
        names = _list_images(os.path.join(train_root, wnid))
        if not names:
            raise ValueError(f"synset folder {os.path.join(train_root, wnid)} holds no image")
        records[wnid] = [f"{ID_PREFIX}/{wnid}/{name}" for name in names]
    return records


def choose_proxy(records: Records, per_class: int, seed: int) -> list[str]:
    """Pick ``per_class`` images of every class with a seeded RNG, in sorted order per class.

    Raises:
        ValueError: a class has fewer images than ``per_class``.
    """
    rng = random.Random(seed)
    chosen: list[str] = []
    for wnid, image_ids in records.items():
        if len(image_ids) < per_class:
            raise ValueError(f"synset {wnid} has {len(image_ids)} images, fewer than "
                             f"--proxy_per_class {per_class}")
        chosen.extend(sorted(rng.sample(image_ids, per_class)))
    return chosen


def _write_lines(path: str, lines: Sequence[str]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(f"{line}\n" for line in lines)


def write_metadata(output: str, records: Records, proxy_ids: Sequence[str] | None,
                   overwrite: bool = False) -> None:
    """Write the metadata files of the train split into ``output``.

    Raises:
        FileExistsError: a metadata file exists already and ``overwrite`` is False.
    """
    existing = [name for name in OUTPUT_FILES if os.path.exists(os.path.join(output, name))]
    if existing and not overwrite:
        raise FileExistsError(f"{output} already holds {', '.join(existing)}; "
                              f"pass --overwrite to replace")
    os.makedirs(output, exist_ok=True)
    image_ids = [image_id for ids in records.values() for image_id in ids]
    labels = [f"{image_id},{label}" for label, ids in enumerate(records.values())
              for image_id in ids]
    _write_lines(os.path.join(output, "image_ids.txt"), image_ids)
    _write_lines(os.path.join(output, "class_labels.txt"), labels)
    _write_lines(os.path.join(output, "image_sizes.txt"), [])
    _write_lines(os.path.join(output, "localization.txt"), [])
    proxy_path = os.path.join(output, "image_ids_proxy.txt")
    if proxy_ids is not None:
        _write_lines(proxy_path, proxy_ids)
    elif os.path.exists(proxy_path):
        os.remove(proxy_path)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train_root", required=True, help="ImageNet train folder of synsets")
    parser.add_argument("--output", required=True, help="metadata folder to write")
    parser.add_argument("--proxy_per_class", type=int, default=0,
                        help="images per class in image_ids_proxy.txt (0: no proxy file)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the proxy selection")
    parser.add_argument("--allow_partial", action="store_true",
                        help="accept a number of synset folders other than 1000")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints a summary and returns the exit status."""
    args = _parse_args(argv)
    try:
        if args.proxy_per_class < 0:
            raise ValueError(f"--proxy_per_class must be >= 0, found {args.proxy_per_class}")
        records = build_records(args.train_root, list_wnids(args.train_root, args.allow_partial))
        proxy_ids = (choose_proxy(records, args.proxy_per_class, args.seed)
                     if args.proxy_per_class else None)
        write_metadata(args.output, records, proxy_ids, args.overwrite)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    num_images = sum(len(ids) for ids in records.values())
    proxy = f", {len(proxy_ids)} proxy images" if proxy_ids else ""
    print(f"wrote {num_images} images of {len(records)} classes{proxy} to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
