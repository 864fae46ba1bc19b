"""Datasets and data loaders (SPEC §2) over the metadata of :mod:`wsol.data.metadata`.

An image lives at ``{data_root}/{image folder}/{image_id}`` where the image folder is the one
the dataset declares in :data:`wsol.data.datasets.DATASETS`: its name, or another dataset's when it
shares its images (``SYNTHETIC_MASK`` reads the images of ``SYNTHETIC``). CARS keeps its two splits
in ``{data_root}/CARS/cars_{split}/`` because its bare image ids repeat across splits (SPEC §1.1).
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import re
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate
from torchvision import transforms

from wsol.data.datasets import get_dataset
from wsol.data.metadata import (
    MetadataError,
    SplitMetadata,
    dataset_folder,
    load_metadata,
    read_image_ids,
    split_folder,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SPLITS",
    "ShardSampler",
    "SkipUnreadableCollate",
    "UnreadableImageError",
    "WSOLDataLoader",
    "WSOLDataset",
    "build_transform",
    "get_data_loader",
    "get_data_loaders",
    "load_split_metadata",
    "sample_per_class",
]

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPLITS = ("train", "val", "test")

Sample = tuple[torch.Tensor, int, str]
SamplerFactory = Callable[[Dataset], Sampler]


class UnreadableImageError(OSError):
    """An image file exists but cannot be decoded; the message names the file and the flag that
    skips such images."""

    def __init__(self, path: str, reason: BaseException | str) -> None:
        one_line = " ".join(str(reason).splitlines())
        super().__init__(f"cannot read image {path}: {one_line}{_SKIP_HINT}")
        self.path = path


_SKIP_HINT = " (--skip_unreadable true skips and counts unreadable images)"
_WORKER_ERROR = re.compile(r"Caught (\w+) in DataLoader worker process \d+\.")
_IMAGE_ERROR = re.compile(r"cannot read image (.*?): (.*)" + re.escape(_SKIP_HINT) + "$")


def _unwrap_worker_error(error: Exception) -> Exception | None:
    """The one-line error a loader worker raised, from the text DataLoader re-raises it with.

    DataLoader re-raises a worker's exception with the worker's whole traceback as its message
    (or as a ``RuntimeError`` when the type cannot be rebuilt from one string). For the errors
    of bad input (:class:`UnreadableImageError`, ``FileNotFoundError``) this returns the error
    as the worker raised it; for anything else None, so a bug keeps its traceback.
    """
    text = str(error)
    caught = _WORKER_ERROR.match(text)
    if caught is None:
        return None
    name = caught.group(1)
    marker = f"{name}: "
    message = text[text.rfind(marker) + len(marker):].strip().splitlines()[0]
    if name == UnreadableImageError.__name__:
        image = _IMAGE_ERROR.match(message)
        return None if image is None else UnreadableImageError(*image.groups())
    if name == FileNotFoundError.__name__:
        return FileNotFoundError(message)
    return None


class WSOLDataLoader(DataLoader):
    """A DataLoader whose workers' bad-input errors reach the caller as the one-line error the
    dataset raised, the same as with ``num_workers=0``."""

    def __iter__(self) -> Iterator:
        iterator = super().__iter__()
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except Exception as error:
                unwrapped = _unwrap_worker_error(error)
                if unwrapped is None:
                    raise
            else:
                yield batch
                continue
            del iterator  # stops the workers now, before the error travels up
            raise unwrapped


def build_transform(split: str, resize_size: int = 256, crop_size: int = 224
                    ) -> transforms.Compose:
    """Return the SPEC §2.2 transform of a split.

    Args:
        split: ``train`` (resize to ``resize_size`` square, random crop, flip) or ``val``/``test``
            (resize to ``crop_size`` square).
        resize_size: side of the square training resize.
        crop_size: side of the training crop and of the evaluation resize.

    Raises:
        ValueError: unknown split or a crop larger than the training resize.
    """
    _check_split(split)
    normalize = [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if split != "train":
        return transforms.Compose([transforms.Resize((crop_size, crop_size)), *normalize])
    if crop_size > resize_size:
        raise ValueError(f"crop_size {crop_size} exceeds resize_size {resize_size}")
    return transforms.Compose([
        transforms.Resize((resize_size, resize_size)),
        transforms.RandomCrop(crop_size),
        transforms.RandomHorizontalFlip(),
        *normalize,
    ])


class WSOLDataset(Dataset):
    """Images of one dataset split with their class labels, in metadata order.

    Args:
        data_root: folder holding one image folder per dataset (``--data_root``).
        metadata: the split's metadata; its ``image_ids`` fix the order.
        transform: applied to the RGB PIL image.
        skip_unreadable: return ``None`` for an undecodable image instead of raising, and count
            it in :attr:`num_skipped` (pair with :class:`SkipUnreadableCollate`).
        augment_seed: when given, the random transform of image ``i`` in epoch ``e`` (see
            :meth:`set_epoch`) draws from a generator seeded with ``(augment_seed, e, i)``, so the
            augmentation of an image does not depend on the order, the loader workers or the
            process that loads it; the global torch RNG is left untouched. ``None``: the
            transform draws from the global torch RNG.

    Raises:
        FileNotFoundError: the dataset's image folder does not exist.
    """

    def __init__(self, data_root: str, metadata: SplitMetadata,
                 transform: Callable[[Image.Image], torch.Tensor],
                 skip_unreadable: bool = False, augment_seed: int | None = None) -> None:
        self.data_root = data_root
        self.metadata = metadata
        self.transform = transform
        self.image_folder = dataset_folder(data_root, metadata.dataset_name)
        if not os.path.isdir(self.image_folder):
            raise FileNotFoundError(
                f"image folder {self.image_folder} not found; set --data_root to the folder "
                f"that holds {os.path.basename(self.image_folder)}/")
        self.skip_unreadable = skip_unreadable
        self._num_skipped = multiprocessing.Value("q", 0) if skip_unreadable else None
        self.augment_seed = augment_seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch`` (used with ``augment_seed``)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.metadata.image_ids)

    def __getitem__(self, index: int) -> Sample | None:
        image_id = self.metadata.image_ids[index]
        path = self.image_path(image_id)
        try:
            image = _load_rgb(path)
        except UnreadableImageError:
            if not self.skip_unreadable:
                raise
            logger.warning("skipping unreadable image %s", path)
            with self._num_skipped.get_lock():
                self._num_skipped.value += 1
            return None
        return self._transform(image, index), self.metadata.class_labels[image_id], image_id

    def _transform(self, image: Image.Image, index: int) -> torch.Tensor:
        if self.augment_seed is None:
            return self.transform(image)
        seed = np.random.SeedSequence([self.augment_seed, self.epoch, index]).generate_state(1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed[0]))
            return self.transform(image)

    @property
    def num_skipped(self) -> int:
        """Number of unreadable images skipped so far (all loader workers together)."""
        return 0 if self._num_skipped is None else self._num_skipped.value

    def image_path(self, image_id: str) -> str:
        """Return the file of ``image_id`` (SPEC §1.1; Stanford Cars also tries its split folder).

        Raises:
            FileNotFoundError: no candidate file exists; the message names every path tried.
        """
        candidates = [os.path.join(self.image_folder, image_id)]
        subfolder = get_dataset(self.metadata.dataset_name).split_subfolder
        if subfolder is not None:
            candidates.append(os.path.join(
                self.image_folder, subfolder.format(split=self.metadata.split), image_id))
        for path in candidates:
            if os.path.isfile(path):
                return path
        raise FileNotFoundError(
            f"image {image_id!r} of {self.metadata.dataset_name}/{self.metadata.split} not "
            f"found; tried {' and '.join(candidates)}")


def _load_rgb(path: str) -> Image.Image:
    """Decode an image file fully and convert it to RGB."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as error:
        raise UnreadableImageError(path, error) from error


class SkipUnreadableCollate:
    """Collate that drops the ``None`` samples of unreadable images.

    A batch whose images are all unreadable becomes an empty batch of shape ``(0, *image_shape)``.

    Args:
        image_shape: ``(C, H, W)`` of one transformed image.
    """

    def __init__(self, image_shape: tuple[int, int, int]) -> None:
        self.image_shape = image_shape

    def __call__(self, samples: Sequence[Sample | None]
                 ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Collate the readable samples into ``(images, labels, image_ids)``."""
        readable = [sample for sample in samples if sample is not None]
        if not readable:
            return torch.empty((0, *self.image_shape)), torch.empty(0, dtype=torch.long), []
        images, labels, image_ids = default_collate(readable)
        return images, labels, list(image_ids)


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world_size, …`` of a dataset, in order, for sharded evaluation.

    Every index goes to exactly one process; unlike ``DistributedSampler`` nothing is padded or
    repeated, so summed evaluation counters equal those of a single process.
    """

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} does not fit world_size {world_size}")
        self.indices = range(rank, length, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def sample_per_class(metadata: SplitMetadata, num_per_class: int) -> SplitMetadata:
    """Keep ``num_per_class`` random images of every class (SPEC §1.4).

    Classes are visited in sorted label order; each draws its images without replacement with
    NumPy's global RNG, so the result is class-grouped. ``0`` keeps every image.

    Raises:
        ValueError: negative count, or a class with fewer images than requested.
    """
    if num_per_class < 0:
        raise ValueError(f"num_val_sample_per_class must be >= 0, found {num_per_class}")
    if num_per_class == 0:
        return metadata
    image_ids = np.array(metadata.image_ids)
    labels = np.array([metadata.class_labels[image_id] for image_id in metadata.image_ids])
    chosen: list[str] = []
    for label in np.unique(labels):
        indices = np.flatnonzero(labels == label)
        if len(indices) < num_per_class:
            raise ValueError(
                f"class {label} of {metadata.dataset_name}/{metadata.split} has {len(indices)} "
                f"images, fewer than num_val_sample_per_class={num_per_class}")
        picked = np.random.choice(indices, num_per_class, replace=False)
        chosen.extend(image_ids[picked].tolist())
    return dataclasses.replace(metadata, image_ids=chosen)


def load_split_metadata(metadata_root: str, dataset_name: str, split: str, *,
                        proxy_training_set: bool = False,
                        num_val_sample_per_class: int = 0) -> SplitMetadata:
    """Load the metadata a loader of ``split`` iterates over (SPEC §1.4).

    The train split is read without localization (ILSVRC train has none) and, with
    ``proxy_training_set``, restricted to ``image_ids_proxy.txt``; the val split is subsampled
    with ``num_val_sample_per_class``.

    Raises:
        MetadataError: a metadata file is missing or malformed.
        ValueError: unknown split or an impossible sample count.
    """
    _check_split(split)
    metadata = load_metadata(metadata_root, dataset_name, split, localization=split != "train")
    if split == "train" and proxy_training_set:
        metadata = _restrict_to_proxy(metadata)
    if split == "val":
        metadata = sample_per_class(metadata, num_val_sample_per_class)
    return metadata


def _restrict_to_proxy(metadata: SplitMetadata) -> SplitMetadata:
    """Replace the image ids by those of ``image_ids_proxy.txt``."""
    path = os.path.join(metadata.folder, "image_ids_proxy.txt")
    proxy_ids = read_image_ids(path)
    unknown = [image_id for image_id in proxy_ids if image_id not in metadata.class_labels]
    if unknown:
        raise MetadataError(path, None, f"{len(unknown)} image ids have no class label, "
                            f"e.g. {unknown[:3]}")
    return dataclasses.replace(metadata, image_ids=proxy_ids)


def get_data_loader(split: str, *, data_root: str, metadata_root: str, dataset_name: str,
                    batch_size: int, workers: int, resize_size: int = 256, crop_size: int = 224,
                    proxy_training_set: bool = False, num_val_sample_per_class: int = 0,
                    sampler_factory: SamplerFactory | None = None,
                    skip_unreadable: bool = False,
                    augment_seed: int | None = None) -> DataLoader:
    """Build the loader of one split (SPEC §2.3).

    The train loader shuffles and keeps the last partial batch; val/test loaders keep the
    metadata order. ``loader.dataset.metadata`` is the metadata iterated over (e.g. the sampled
    val images), to build the evaluator from.

    Args:
        split: ``train``, ``val`` or ``test``.
        data_root: folder holding one image folder per dataset (``--data_root``).
        metadata_root: folder holding one metadata folder per dataset (``--metadata_root``).
        dataset_name: dataset, e.g. ``CUB``.
        batch_size: images per batch.
        workers: loader worker processes.
        resize_size: training resize side.
        crop_size: training crop side and evaluation resize side.
        proxy_training_set: train on ``image_ids_proxy.txt``.
        num_val_sample_per_class: val images kept per class (0 = all).
        sampler_factory: builds the sampler from the dataset (e.g. a ``DistributedSampler``);
            it then decides the order, and the loader does not shuffle itself.
        skip_unreadable: drop undecodable images instead of raising; the count is
            ``loader.dataset.num_skipped``.
        augment_seed: per-image seeded augmentation (see :class:`WSOLDataset`); call
            ``loader.dataset.set_epoch(epoch)`` before each epoch.

    Raises:
        FileNotFoundError: the image folder under ``data_root`` does not exist.
        MetadataError: the split's metadata is missing or malformed.
    """
    metadata = load_split_metadata(metadata_root, dataset_name, split,
                                   proxy_training_set=proxy_training_set,
                                   num_val_sample_per_class=num_val_sample_per_class)
    dataset = WSOLDataset(data_root, metadata, build_transform(split, resize_size, crop_size),
                          skip_unreadable=skip_unreadable, augment_seed=augment_seed)
    sampler = None if sampler_factory is None else sampler_factory(dataset)
    collate = SkipUnreadableCollate((3, crop_size, crop_size)) if skip_unreadable else None
    return WSOLDataLoader(dataset, batch_size=batch_size,
                          shuffle=split == "train" and sampler is None, sampler=sampler,
                          num_workers=workers, collate_fn=collate, drop_last=False,
                          pin_memory=torch.cuda.is_available())


def get_data_loaders(*, data_root: str, metadata_root: str, dataset_name: str, batch_size: int,
                     workers: int, resize_size: int = 256, crop_size: int = 224,
                     proxy_training_set: bool = False, num_val_sample_per_class: int = 0,
                     splits: Sequence[str] | None = None,
                     sampler_factory: SamplerFactory | None = None,
                     skip_unreadable: bool = False) -> dict[str, DataLoader]:
    """Build the loaders of several splits with :func:`get_data_loader`.

    The other arguments are those of :func:`get_data_loader`.

    Args:
        splits: splits to build; ``None`` builds every split of :data:`SPLITS` whose metadata
            folder exists (CARS has no val split).

    Returns:
        ``{split: loader}`` in :data:`SPLITS` order.

    Raises:
        MetadataError: ``splits`` is ``None`` and no split folder exists.
    """
    if splits is None:
        splits = _available_splits(metadata_root, dataset_name)
    return {split: get_data_loader(
        split, data_root=data_root, metadata_root=metadata_root, dataset_name=dataset_name,
        batch_size=batch_size, workers=workers, resize_size=resize_size, crop_size=crop_size,
        proxy_training_set=proxy_training_set, num_val_sample_per_class=num_val_sample_per_class,
        sampler_factory=sampler_factory, skip_unreadable=skip_unreadable) for split in splits}


def _available_splits(metadata_root: str, dataset_name: str) -> list[str]:
    """Return the splits of :data:`SPLITS` whose metadata folder exists."""
    splits = [split for split in SPLITS
              if os.path.isdir(split_folder(metadata_root, dataset_name, split))]
    if not splits:
        raise MetadataError(os.path.join(metadata_root, dataset_name), None,
                            "no train/val/test metadata folder found (check --metadata_root)")
    missing = sorted(set(SPLITS) - set(splits))
    if missing:
        logger.info("%s has no metadata for %s; building %s", dataset_name, missing, splits)
    return splits


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
