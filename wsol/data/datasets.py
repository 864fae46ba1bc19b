"""The datasets: one declaration each, read by the metadata reader, the loaders and the CLIs.

A new dataset is one :class:`DatasetSpec` line in :data:`DATASETS` plus its metadata folder
(``{metadata_root}/{name}/{split}/``, SPEC §1.2).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DATASETS", "DatasetSpec", "get_dataset"]


@dataclass(frozen=True)
class DatasetSpec:
    """What the code needs to know about a dataset besides its metadata files.

    Attributes:
        name: the ``--dataset_name`` value.
        num_classes: K.
        has_masks: evaluated with pixel masks (PxAP) instead of boxes.
        image_folder: folder under the data root holding its images and masks (default: name).
        val_sample_limit: largest ``--num_val_sample_per_class`` (SPEC §1.4); None: no limit.
        split_subfolder: second place images are looked for, ``{image_folder}/{split_subfolder}``
            formatted with the split (Stanford Cars keeps ``cars_train/`` and ``cars_test/``).
    """

    name: str
    num_classes: int
    has_masks: bool = False
    image_folder: str | None = None
    val_sample_limit: int | None = None
    split_subfolder: str | None = None

    @property
    def folder(self) -> str:
        """Folder name of its files under the data or mask root."""
        return self.image_folder or self.name


DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec("CUB", 200, val_sample_limit=5),
    DatasetSpec("ILSVRC", 1000),
    DatasetSpec("OpenImages", 100, has_masks=True, val_sample_limit=25),
    DatasetSpec("CARS", 196, split_subfolder="cars_{split}"),
    DatasetSpec("SYNTHETIC", 4),
    DatasetSpec("SYNTHETIC_MASK", 4, has_masks=True, image_folder="SYNTHETIC"),
)}


def get_dataset(name: str) -> DatasetSpec:
    """The declaration of a dataset.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    return DATASETS[name]
