"""Dataset metadata: parsing of the WSOL text files (SPEC §1).

Every dataset split lives in ``{metadata_root}/{dataset_name}/{split}/`` and holds
``image_ids.txt``, ``class_labels.txt``, ``image_sizes.txt`` and ``localization.txt``.
Box datasets (CUB, ILSVRC, CARS) store ``image_id,x0,y0,x1,y1`` per box in ``localization.txt``;
OpenImages stores ``image_id,mask_path,ignore_path`` per instance mask. Malformed lines raise
:class:`MetadataError` naming the file, the line number and what was expected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from wsol.data.datasets import DATASETS, get_dataset

__all__ = [
    "NUM_CLASSES",
    "Box",
    "MetadataError",
    "SplitMetadata",
    "dataset_folder",
    "load_metadata",
    "missing_split_hint",
    "read_boxes",
    "read_class_labels",
    "read_image_ids",
    "read_image_sizes",
    "read_mask_paths",
    "split_folder",
]

NUM_CLASSES: dict[str, int] = {name: spec.num_classes for name, spec in DATASETS.items()}

Box = tuple[int, int, int, int]


class MetadataError(ValueError):
    """A metadata file is missing or malformed."""

    def __init__(self, path: str, line_number: int | None, message: str) -> None:
        where = path if line_number is None else f"{path}, line {line_number}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line_number = line_number


def _records(path: str, num_fields: int, expected: str) -> list[tuple[int, list[str]]]:
    """Return ``(line_number, fields)`` for each non-empty line of a comma-separated file."""
    if not os.path.isfile(path):
        raise MetadataError(path, None, "file not found")
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MetadataError(path, data[:error.start].count(b"\n") + 1,
                            f"not UTF-8 text ({error.reason} at byte {error.start})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    rows = [line.split(",") for line in lines]
    if "\r" not in text and "" not in lines and all(len(row) == num_fields for row in rows):
        return list(enumerate(rows, start=1))
    records = []
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if not line:
            raise MetadataError(path, number, f"empty line; expected '{expected}'")
        fields = line.split(",")
        if len(fields) != num_fields:
            raise MetadataError(
                path, number, f"expected {num_fields} comma-separated fields '{expected}', "
                f"found {len(fields)}: {line!r}")
        records.append((number, fields))
    return records


def _to_int(path: str, number: int, value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise MetadataError(path, number, f"{name} must be an integer, found {value!r}") from None


def _to_ints(path: str, number: int, values: list[str], names: tuple[str, ...]
             ) -> tuple[int, ...]:
    """``values`` as integers; an error names the first field that is not one."""
    try:
        return tuple(map(int, values))
    except ValueError:
        return tuple(_to_int(path, number, value, name) for value, name in zip(values, names))


def read_image_ids(path: str) -> list[str]:
    """Read ``image_ids.txt``: one id per line, order preserved, duplicates rejected."""
    image_ids: list[str] = []
    seen: set[str] = set()
    for number, (image_id,) in _records(path, 1, "image_id"):
        if image_id in seen:
            raise MetadataError(path, number, f"duplicate image id {image_id!r}")
        seen.add(image_id)
        image_ids.append(image_id)
    return image_ids


def read_class_labels(path: str, num_classes: int | None = None) -> dict[str, int]:
    """Read ``class_labels.txt``: ``image_id,label`` with 0-based integer labels."""
    labels: dict[str, int] = {}
    for number, (image_id, value) in _records(path, 2, "image_id,label"):
        label = _to_int(path, number, value, "label")
        if label < 0 or (num_classes is not None and label >= num_classes):
            raise MetadataError(
                path, number, f"label {label} outside [0, {num_classes}) for {image_id!r}")
        if image_id in labels:
            raise MetadataError(path, number, f"duplicate image id {image_id!r}")
        labels[image_id] = label
    return labels


def read_image_sizes(path: str) -> dict[str, tuple[int, int]]:
    """Read ``image_sizes.txt``: ``image_id,width,height`` in pixels."""
    sizes: dict[str, tuple[int, int]] = {}
    for number, (image_id, width, height) in _records(path, 3, "image_id,width,height"):
        size = _to_ints(path, number, [width, height], ("width", "height"))
        if min(size) <= 0:
            raise MetadataError(path, number, f"image size must be positive, found {size}")
        if image_id in sizes:
            raise MetadataError(path, number, f"duplicate image id {image_id!r}")
        sizes[image_id] = size
    return sizes


def read_boxes(path: str, image_sizes: dict[str, tuple[int, int]] | None = None
               ) -> dict[str, list[Box]]:
    """Read box ``localization.txt``: ``image_id,x0,y0,x1,y1``; several lines = several boxes.

    Boxes keep file order (the first box matters for GT-known Loc, SPEC §7.6). With
    ``image_sizes`` each box is checked against its image, allowing the one-pixel overhang of the
    1-based CARS annotations (SPEC A21).
    """
    boxes: dict[str, list[Box]] = {}
    for number, fields in _records(path, 5, "image_id,x0,y0,x1,y1"):
        image_id = fields[0]
        x0, y0, x1, y1 = _to_ints(path, number, fields[1:], ("x0", "y0", "x1", "y1"))
        if min(x0, y0) < 0 or x1 < x0 or y1 < y0:
            raise MetadataError(
                path, number, f"box must satisfy 0 <= x0 <= x1 and 0 <= y0 <= y1, "
                f"found ({x0},{y0},{x1},{y1})")
        if image_sizes is not None:
            if image_id not in image_sizes:
                raise MetadataError(path, number, f"image id {image_id!r} has no image size")
            width, height = image_sizes[image_id]
            if x1 > width or y1 > height:
                raise MetadataError(
                    path, number, f"box ({x0},{y0},{x1},{y1}) lies outside the "
                    f"{width}x{height} image {image_id!r}")
        boxes.setdefault(image_id, []).append((x0, y0, x1, y1))
    return boxes


def read_mask_paths(path: str) -> dict[str, tuple[list[str], str]]:
    """Read mask ``localization.txt``: ``image_id,mask_path,ignore_path`` per instance.

    The first line of an image names its ignore mask; later lines of the same image leave the
    third field empty (SPEC §1.2). Returns ``{image_id: ([mask_path, ...], ignore_path)}``.
    """
    masks: dict[str, tuple[list[str], str]] = {}
    for number, (image_id, mask_path, ignore_path) in _records(
            path, 3, "image_id,mask_path,ignore_path"):
        if not mask_path:
            raise MetadataError(path, number, "empty mask path")
        if image_id not in masks:
            if not ignore_path:
                raise MetadataError(
                    path, number, f"first line of {image_id!r} must name its ignore mask")
            masks[image_id] = ([mask_path], ignore_path)
        else:
            if ignore_path:
                raise MetadataError(
                    path, number, f"only the first line of {image_id!r} may name an ignore "
                    f"mask, found {ignore_path!r}")
            masks[image_id][0].append(mask_path)
    return masks


@dataclass
class SplitMetadata:
    """Everything the metadata files say about one dataset split."""

    dataset_name: str
    split: str
    folder: str
    image_ids: list[str]
    class_labels: dict[str, int]
    image_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    boxes: dict[str, list[Box]] = field(default_factory=dict)
    mask_paths: dict[str, tuple[list[str], str]] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """Number of classes of the dataset."""
        return get_dataset(self.dataset_name).num_classes

    @property
    def has_masks(self) -> bool:
        """True for mask datasets (PxAP), False for box datasets."""
        return get_dataset(self.dataset_name).has_masks

    def subset(self, image_ids: list[str]) -> SplitMetadata:
        """The same split restricted to ``image_ids`` (in that order)."""
        unknown = [i for i in image_ids if i not in self.class_labels]
        if unknown:
            raise KeyError(f"{len(unknown)} image ids are not in {self.folder}, e.g. {unknown[:3]}")

        def pick(table: dict) -> dict:
            return {i: table[i] for i in image_ids if i in table}

        return SplitMetadata(self.dataset_name, self.split, self.folder, list(image_ids),
                             pick(self.class_labels), pick(self.image_sizes), pick(self.boxes),
                             pick(self.mask_paths))


def dataset_folder(root: str, dataset_name: str) -> str:
    """Return the folder of a dataset's files under ``root``.

    The same rule serves images (``root`` = ``--data_root``) and masks (``root`` =
    ``--mask_root``): ``{root}/{folder}`` with the dataset's declared folder, its name unless it
    shares another dataset's files (``SYNTHETIC_MASK`` uses ``SYNTHETIC``'s).
    """
    return os.path.join(root, get_dataset(dataset_name).folder)


def missing_split_hint(dataset_name: str, split: str, folder: str,
                       train_root: str = "dataset/ILSVRC/train") -> str:
    """What to run when the metadata folder of a split is missing: the ImageNet train metadata
    is not shipped but generated from the user's copy of ImageNet (``""`` for other splits)."""
    if (dataset_name, split) != ("ILSVRC", "train"):
        return ""
    return ("; the ImageNet train metadata is not shipped, generate it from your ImageNet train "
            f"folder with: python scripts/make_ilsvrc_train_metadata.py --train_root "
            f"{train_root} --output {folder}")


def split_folder(metadata_root: str, dataset_name: str, split: str) -> str:
    """Return ``{metadata_root}/{dataset_name}/{split}``."""
    return os.path.join(metadata_root, dataset_name, split)


def load_metadata(metadata_root: str, dataset_name: str, split: str,
                  localization: bool = True) -> SplitMetadata:
    """Load and cross-check the metadata of one split.

    Args:
        metadata_root: folder holding one sub-folder per dataset.
        dataset_name: one of :data:`NUM_CLASSES`.
        split: ``train``, ``val`` or ``test``.
        localization: read sizes and boxes/masks (not needed for training).

    Raises:
        MetadataError: a file is missing, malformed or inconsistent with another.
    """
    spec = get_dataset(dataset_name)
    folder = split_folder(metadata_root, dataset_name, split)
    if not os.path.isdir(folder):
        raise MetadataError(folder, None, "metadata folder not found (check --metadata_root)"
                            + missing_split_hint(dataset_name, split, folder))
    ids_path = os.path.join(folder, "image_ids.txt")
    image_ids = read_image_ids(ids_path)
    labels_path = os.path.join(folder, "class_labels.txt")
    class_labels = read_class_labels(labels_path, spec.num_classes)
    _check_same_ids(image_ids, class_labels, ids_path, labels_path)
    metadata = SplitMetadata(dataset_name, split, folder, image_ids, class_labels)
    if not localization:
        return metadata
    loc_path = os.path.join(folder, "localization.txt")
    if spec.has_masks:
        metadata.mask_paths = read_mask_paths(loc_path)
        _check_covered(image_ids, metadata.mask_paths, ids_path, loc_path)
    else:
        sizes_path = os.path.join(folder, "image_sizes.txt")
        metadata.image_sizes = read_image_sizes(sizes_path)
        _check_covered(image_ids, metadata.image_sizes, ids_path, sizes_path)
        metadata.boxes = read_boxes(loc_path, metadata.image_sizes)
        _check_covered(image_ids, metadata.boxes, ids_path, loc_path)
    return metadata


def _check_same_ids(image_ids: list[str], labels: dict[str, int], ids_path: str,
                    labels_path: str) -> None:
    _check_covered(image_ids, labels, ids_path, labels_path)
    extra = set(labels) - set(image_ids)
    if extra:
        raise MetadataError(labels_path, None, f"{len(extra)} image ids are not in {ids_path}, "
                            f"e.g. {sorted(extra)[:3]}")


def _check_covered(image_ids: list[str], table: dict, ids_path: str, table_path: str) -> None:
    missing = [image_id for image_id in image_ids if image_id not in table]
    if missing:
        raise MetadataError(table_path, None, f"{len(missing)} image ids of {ids_path} have no "
                            f"record, e.g. {missing[:3]}")
