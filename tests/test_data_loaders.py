"""Tests of data_loaders.py: datasets, transforms, path rules, sampling and loaders."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import RandomSampler, SequentialSampler
from torchvision import transforms

from data_loaders import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SkipUnreadableCollate,
    UnreadableImageError,
    WSOLDataset,
    build_transform,
    get_data_loader,
    get_data_loaders,
    sample_per_class,
)
from wsol.data.metadata import MetadataError, SplitMetadata, dataset_folder, load_metadata

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]


def _write_lines(path: str, lines: list[str]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))


def _write_split(metadata_root: str, dataset: str, split: str,
                 records: list[tuple[str, int, tuple[int, int]]]) -> None:
    """Write box metadata: one full-image box per ``(image_id, label, (W, H))``."""
    folder = os.path.join(metadata_root, dataset, split)
    _write_lines(os.path.join(folder, "image_ids.txt"), [r[0] for r in records])
    _write_lines(os.path.join(folder, "class_labels.txt"), [f"{r[0]},{r[1]}" for r in records])
    _write_lines(os.path.join(folder, "image_sizes.txt"),
                 [f"{r[0]},{r[2][0]},{r[2][1]}" for r in records])
    _write_lines(os.path.join(folder, "localization.txt"),
                 [f"{r[0]},0,0,{r[2][0] - 1},{r[2][1] - 1}" for r in records])


def _write_image(path: str, size: tuple[int, int], colour: tuple[int, int, int]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def _metadata(dataset: str, split: str, image_ids: list[str], labels: list[int]
              ) -> SplitMetadata:
    labels_by_id = dict(zip(image_ids, labels, strict=True))
    return SplitMetadata(dataset, split, "", list(image_ids), labels_by_id)


@pytest.fixture
def cub_like(tmp_path):
    """A CUB-named dataset with 6 train, 12 val (3 classes x 4) and 6 test images."""
    data_root, metadata_root = str(tmp_path / "dataset"), str(tmp_path / "metadata")
    splits = {}
    for split, count in (("train", 6), ("val", 12), ("test", 6)):
        records = []
        for n in range(count):
            image_id = f"{n % 3:03d}.Class/{split}_{n}.png"
            size = (40 + 7 * n, 30 + 5 * n)
            _write_image(os.path.join(data_root, "CUB", image_id), size, COLOURS[n % 6])
            records.append((image_id, n % 3, size))
        _write_split(metadata_root, "CUB", split, records)
        splits[split] = records
    return data_root, metadata_root, splits


def test_dataset_returns_images_labels_and_ids_in_file_order(cub_like):
    data_root, metadata_root, splits = cub_like
    metadata = load_metadata(metadata_root, "CUB", "test")
    dataset = WSOLDataset(data_root, metadata, transforms.PILToTensor())
    assert len(dataset) == 6
    for index, (image_id, label, (width, height)) in enumerate(splits["test"]):
        image, got_label, got_id = dataset[index]
        assert (got_id, got_label) == (image_id, label)
        assert isinstance(got_label, int)
        assert image.shape == (3, height, width)
        expected = torch.tensor(COLOURS[index % 6], dtype=torch.uint8)[:, None, None]
        assert torch.equal(image, expected.expand(3, height, width))


def test_dataset_converts_greyscale_and_alpha_to_rgb(tmp_path):
    os.makedirs(tmp_path / "CUB")
    Image.new("L", (9, 7), 100).save(tmp_path / "CUB" / "grey.png")
    Image.new("RGBA", (9, 7), (1, 2, 3, 4)).save(tmp_path / "CUB" / "alpha.png")
    metadata = _metadata("CUB", "test", ["grey.png", "alpha.png"], [0, 1])
    dataset = WSOLDataset(str(tmp_path), metadata, transforms.PILToTensor())
    assert dataset[0][0].shape == dataset[1][0].shape == (3, 7, 9)
    assert dataset[0][0].unique().tolist() == [100]


def test_train_transform_resizes_to_256_then_crops_224():
    transform = build_transform("train", resize_size=256, crop_size=224)
    steps = transform.transforms
    assert [type(step) for step in steps] == [
        transforms.Resize, transforms.RandomCrop, transforms.RandomHorizontalFlip,
        transforms.ToTensor, transforms.Normalize]
    assert tuple(steps[0].size) == (256, 256)
    assert tuple(steps[1].size) == (224, 224)
    assert steps[2].p == 0.5
    image = Image.new("RGB", (500, 180), (10, 20, 30))
    output = transform(image)
    assert output.shape == (3, 224, 224) and output.dtype == torch.float32


def test_eval_transform_resizes_to_224_without_crop():
    for split in ("val", "test"):
        transform = build_transform(split)
        assert [type(step) for step in transform.transforms] == [
            transforms.Resize, transforms.ToTensor, transforms.Normalize]
        rng = np.random.default_rng(0)
        image = Image.fromarray(rng.integers(0, 256, (150, 333, 3), dtype=np.uint8))
        expected = np.asarray(image.resize((224, 224), Image.BILINEAR), dtype=np.float32) / 255
        expected = (expected - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
        output = transform(image)
        assert output.shape == (3, 224, 224)
        np.testing.assert_allclose(output.permute(1, 2, 0).numpy(), expected, atol=1e-5)


def test_transform_rejects_unknown_split_and_oversized_crop():
    with pytest.raises(ValueError, match="unknown split"):
        build_transform("training")
    with pytest.raises(ValueError, match="crop_size 300 exceeds resize_size 256"):
        build_transform("train", resize_size=256, crop_size=300)


def test_cars_path_rule(tmp_path):
    data_root = str(tmp_path)
    split_path = os.path.join(data_root, "CARS", "cars_test", "00001.jpg")
    _write_image(split_path, (8, 8), (0, 0, 0))
    dataset = WSOLDataset(data_root, _metadata("CARS", "test", ["00001.jpg"], [3]),
                          transforms.PILToTensor())
    assert dataset.image_path("00001.jpg") == split_path
    assert dataset[0][1:] == (3, "00001.jpg")
    direct_path = os.path.join(data_root, "CARS", "00001.jpg")
    _write_image(direct_path, (8, 8), (0, 0, 0))
    assert dataset.image_path("00001.jpg") == direct_path


def test_missing_cars_image_names_both_paths(tmp_path):
    os.makedirs(tmp_path / "CARS")
    dataset = WSOLDataset(str(tmp_path), _metadata("CARS", "train", ["00002.jpg"], [0]),
                          transforms.PILToTensor())
    direct = os.path.join(str(tmp_path), "CARS", "00002.jpg")
    fallback = os.path.join(str(tmp_path), "CARS", "cars_train", "00002.jpg")
    with pytest.raises(FileNotFoundError) as info:
        dataset[0]
    assert direct in str(info.value) and fallback in str(info.value)


def test_missing_image_of_other_dataset_names_its_path(tmp_path):
    os.makedirs(tmp_path / "CUB")
    dataset = WSOLDataset(str(tmp_path), _metadata("CUB", "test", ["a/b.jpg"], [0]),
                          transforms.PILToTensor())
    with pytest.raises(FileNotFoundError, match=re.escape(os.path.join("CUB", "a", "b.jpg"))):
        dataset[0]


def test_shared_image_folder_for_synthetic_mask(tmp_path):
    assert dataset_folder("root", "SYNTHETIC_MASK") == os.path.join("root", "SYNTHETIC")
    assert dataset_folder("root", "OpenImages") == os.path.join("root", "OpenImages")
    _write_image(str(tmp_path / "SYNTHETIC" / "test" / "x.jpg"), (5, 4), (0, 0, 0))
    dataset = WSOLDataset(str(tmp_path), _metadata("SYNTHETIC_MASK", "test", ["test/x.jpg"], [1]),
                          transforms.PILToTensor())
    assert dataset[0][0].shape == (3, 4, 5)


def test_missing_data_root_names_path_and_flag(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError) as info:
        WSOLDataset(missing, _metadata("CUB", "test", ["a.jpg"], [0]), transforms.PILToTensor())
    assert os.path.join(missing, "CUB") in str(info.value)
    assert "--data_root" in str(info.value)


@pytest.mark.parametrize("content", [b"not an image at all", "truncated"])
def test_corrupt_image_error_names_the_file(tmp_path, content):
    path = tmp_path / "CUB" / "bad.jpg"
    os.makedirs(path.parent)
    if content == "truncated":
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
                        ).save(path, quality=95)
        path.write_bytes(path.read_bytes()[:600])
    else:
        path.write_bytes(content)
    dataset = WSOLDataset(str(tmp_path), _metadata("CUB", "test", ["bad.jpg"], [0]),
                          build_transform("test"))
    with pytest.raises(UnreadableImageError, match=re.escape(str(path))):
        dataset[0]


@pytest.mark.parametrize("workers", [0, 1])
def test_skip_unreadable_drops_and_counts(cub_like, workers):
    data_root, metadata_root, splits = cub_like
    bad_ids = [splits["test"][1][0], splits["test"][4][0]]
    for image_id in bad_ids:
        with open(os.path.join(data_root, "CUB", image_id), "wb") as handle:
            handle.write(b"garbage")
    loader = get_data_loader("test", data_root=data_root, metadata_root=metadata_root,
                             dataset_name="CUB", batch_size=4, workers=workers,
                             skip_unreadable=True)
    seen = []
    for images, labels, image_ids in loader:
        assert images.shape == (len(image_ids), 3, 224, 224)
        assert labels.shape == (len(image_ids),)
        seen.extend(image_ids)
    assert seen == [r[0] for r in splits["test"] if r[0] not in bad_ids]
    assert loader.dataset.num_skipped == 2


def test_skip_collate_returns_empty_batch_when_nothing_is_readable():
    images, labels, image_ids = SkipUnreadableCollate((3, 224, 224))([None, None])
    assert images.shape == (0, 3, 224, 224) and labels.shape == (0,) and image_ids == []


def test_sample_per_class_draws_without_replacement_with_global_rng():
    image_ids = [f"img{n}" for n in range(15)]
    labels = [2, 0, 1] * 5
    metadata = _metadata("CUB", "val", image_ids, labels)
    np.random.seed(7)
    sampled = sample_per_class(metadata, 2).image_ids
    assert [metadata.class_labels[i] for i in sampled] == [0, 0, 1, 1, 2, 2]
    assert len(set(sampled)) == 6
    np.random.seed(7)
    expected = []
    for label in (0, 1, 2):
        indices = np.flatnonzero(np.array(labels) == label)
        expected.extend(image_ids[i] for i in np.random.choice(indices, 2, replace=False))
    assert sampled == expected
    assert sample_per_class(metadata, 0) is metadata
    assert metadata.image_ids == image_ids


def test_sample_per_class_rejects_impossible_counts():
    metadata = _metadata("CUB", "val", ["a", "b", "c"], [0, 0, 1])
    with pytest.raises(ValueError, match="class 1 .* has 1 images"):
        sample_per_class(metadata, 2)
    with pytest.raises(ValueError, match=">= 0"):
        sample_per_class(metadata, -1)


def test_num_val_sample_per_class_applies_to_val_only(cub_like):
    data_root, metadata_root, _ = cub_like
    np.random.seed(0)
    loaders = get_data_loaders(data_root=data_root, metadata_root=metadata_root,
                               dataset_name="CUB", batch_size=4, workers=0,
                               num_val_sample_per_class=2)
    val = loaders["val"].dataset.metadata
    assert len(val.image_ids) == 6
    assert [val.class_labels[i] for i in val.image_ids] == [0, 0, 1, 1, 2, 2]
    assert len(loaders["test"].dataset) == 6 and len(loaders["train"].dataset) == 6


def test_loaders_shuffle_train_only_and_keep_partial_batches(cub_like):
    data_root, metadata_root, splits = cub_like
    loaders = get_data_loaders(data_root=data_root, metadata_root=metadata_root,
                               dataset_name="CUB", batch_size=4, workers=0)
    assert list(loaders) == ["train", "val", "test"]
    assert isinstance(loaders["train"].sampler, RandomSampler)
    assert not loaders["train"].drop_last
    assert [len(batch[2]) for batch in loaders["train"]] == [4, 2]
    assert sorted(i for batch in loaders["train"] for i in batch[2]) == sorted(
        r[0] for r in splits["train"])
    for split in ("val", "test"):
        assert isinstance(loaders[split].sampler, SequentialSampler)
    images, labels, image_ids = next(iter(loaders["test"]))
    assert images.shape == (4, 3, 224, 224)
    assert labels.tolist() == [r[1] for r in splits["test"][:4]]
    assert list(image_ids) == [r[0] for r in splits["test"][:4]]
    train_images = next(iter(loaders["train"]))[0]
    assert train_images.shape == (4, 3, 224, 224)


def test_available_splits_and_missing_metadata(cub_like, tmp_path):
    data_root, metadata_root, _ = cub_like
    loaders = get_data_loaders(data_root=data_root, metadata_root=metadata_root,
                               dataset_name="CUB", batch_size=2, workers=0,
                               splits=["test"])
    assert list(loaders) == ["test"]
    with pytest.raises(MetadataError, match="--metadata_root"):
        get_data_loaders(data_root=data_root, metadata_root=str(tmp_path / "none"),
                         dataset_name="CUB", batch_size=2, workers=0)


def test_proxy_training_set_uses_proxy_ids(cub_like):
    data_root, metadata_root, splits = cub_like
    proxy_ids = [splits["train"][4][0], splits["train"][0][0]]
    _write_lines(os.path.join(metadata_root, "CUB", "train", "image_ids_proxy.txt"), proxy_ids)
    loader = get_data_loader("train", data_root=data_root, metadata_root=metadata_root,
                             dataset_name="CUB", batch_size=8, workers=0,
                             proxy_training_set=True)
    assert loader.dataset.metadata.image_ids == proxy_ids
    assert sorted(next(iter(loader))[2]) == sorted(proxy_ids)
    _write_lines(os.path.join(metadata_root, "CUB", "train", "image_ids_proxy.txt"), ["zz.jpg"])
    with pytest.raises(MetadataError, match="no class label"):
        get_data_loader("train", data_root=data_root, metadata_root=metadata_root,
                        dataset_name="CUB", batch_size=8, workers=0, proxy_training_set=True)


def test_sampler_factory_replaces_shuffling(cub_like):
    data_root, metadata_root, _ = cub_like
    built = []

    def factory(dataset):
        built.append(dataset)
        return SequentialSampler(dataset)

    loader = get_data_loader("train", data_root=data_root, metadata_root=metadata_root,
                             dataset_name="CUB", batch_size=8, workers=0,
                             sampler_factory=factory)
    assert built == [loader.dataset]
    assert isinstance(loader.sampler, SequentialSampler)
    assert list(next(iter(loader))[2]) == loader.dataset.metadata.image_ids
