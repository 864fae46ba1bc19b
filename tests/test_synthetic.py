"""Tests of wsol/synthetic.py: the generated images, masks and metadata of both datasets."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from data_loaders import WSOLDataset, build_transform, get_data_loader
from wsol.data.metadata import (
    SplitMetadata,
    load_metadata,
    read_class_labels,
    read_image_ids,
    read_image_sizes,
    read_mask_paths,
)
from wsol.data.synthetic import (
    CLASS_NAMES,
    DATASET_NAME,
    MASK_DATASET_NAME,
    generate_synthetic_dataset,
    main,
    render_image,
)

COUNTS = {"train": 8, "val": 12, "test": 12}


def _generate(root, seed: int = 3, **kwargs) -> tuple[str, str]:
    data_root, metadata_root = str(root / "dataset"), str(root / "metadata")
    generate_synthetic_dataset(data_root, metadata_root, num_train=COUNTS["train"],
                               num_val=COUNTS["val"], num_test=COUNTS["test"], image_size=96,
                               seed=seed, **kwargs)
    return data_root, metadata_root


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return _generate(tmp_path_factory.mktemp("synthetic"))


def _mask_metadata(metadata_root: str, split: str) -> tuple[list[str], dict, dict]:
    folder = os.path.join(metadata_root, MASK_DATASET_NAME, split)
    return (read_image_ids(os.path.join(folder, "image_ids.txt")),
            read_class_labels(os.path.join(folder, "class_labels.txt"), len(CLASS_NAMES)),
            read_mask_paths(os.path.join(folder, "localization.txt")))


def _read_binary(path: str) -> np.ndarray:
    mask = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    assert mask is not None, path
    assert set(np.unique(mask).tolist()) <= {0, 255}
    return mask > 0


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_box_metadata_parses_and_matches_images(generated, split):
    data_root, metadata_root = generated
    metadata = load_metadata(metadata_root, DATASET_NAME, split)
    assert len(metadata.image_ids) == COUNTS[split]
    for n, image_id in enumerate(metadata.image_ids):
        label = metadata.class_labels[image_id]
        assert label == n % len(CLASS_NAMES)
        assert image_id == f"{split}/{CLASS_NAMES[label]}/{n:05d}.jpg"
        image = cv2.imread(os.path.join(data_root, DATASET_NAME, image_id))
        width, height = metadata.image_sizes[image_id]
        assert image.shape == (height, width, 3)
        assert min(width, height) >= 48
        assert max(width, height) <= 96
    metadata_files = ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt")
    for name in metadata_files:
        with open(os.path.join(metadata.folder, name), encoding="utf-8") as handle:
            text = handle.read()
        assert text == "" or text.endswith("\n") and not text.endswith("\n\n")


def test_some_images_have_several_boxes(generated):
    _, metadata_root = generated
    counts = [len(boxes) for split in COUNTS
              for boxes in load_metadata(metadata_root, DATASET_NAME, split).boxes.values()]
    assert max(counts) > 1 and min(counts) == 1


@pytest.mark.parametrize("split", ["val", "test"])
def test_mask_metadata_parses_and_masks_lie_in_their_boxes(generated, split):
    data_root, metadata_root = generated
    boxes = load_metadata(metadata_root, DATASET_NAME, split)
    image_ids, labels, masks = _mask_metadata(metadata_root, split)
    assert image_ids == boxes.image_ids and labels == boxes.class_labels
    assert set(masks) == set(image_ids)
    sizes_path = os.path.join(metadata_root, MASK_DATASET_NAME, split, "image_sizes.txt")
    assert read_image_sizes(sizes_path) == {} and os.path.getsize(sizes_path) == 0
    image_folder = os.path.join(data_root, DATASET_NAME)
    for image_id in image_ids:
        mask_paths, ignore_path = masks[image_id]
        assert len(mask_paths) == len(boxes.boxes[image_id])
        width, height = boxes.image_sizes[image_id]
        union = np.zeros((height, width), dtype=bool)
        for mask_path, (x0, y0, x1, y1) in zip(mask_paths, boxes.boxes[image_id], strict=True):
            mask = _read_binary(os.path.join(image_folder, mask_path))
            assert mask.shape == (height, width)
            ys, xs = np.nonzero(mask)
            assert (xs.min(), ys.min(), xs.max(), ys.max()) == (x0, y0, x1, y1)
            union[y0:y1 + 1, x0:x1 + 1] = True
        foreground = np.any([_read_binary(os.path.join(image_folder, p)) for p in mask_paths],
                            axis=0)
        assert not (foreground & ~union).any()
        assert _read_binary(os.path.join(image_folder, ignore_path)).shape == (height, width)


def test_ignore_regions_partially_overlap_objects(generated):
    data_root, metadata_root = generated
    image_folder = os.path.join(data_root, DATASET_NAME)
    with_ignore = 0
    for split in ("val", "test"):
        for mask_paths, ignore_path in _mask_metadata(metadata_root, split)[2].values():
            ignore = _read_binary(os.path.join(image_folder, ignore_path))
            if not ignore.any():
                continue
            with_ignore += 1
            first = _read_binary(os.path.join(image_folder, mask_paths[0]))
            assert (ignore & first).any() and (ignore & ~first).any()
    assert with_ignore > 0


def test_objects_are_drawn_in_their_masks(generated):
    data_root, metadata_root = generated
    image_ids, labels, masks = _mask_metadata(metadata_root, "test")
    image_folder = os.path.join(data_root, DATASET_NAME)
    for image_id in image_ids:
        image = cv2.imread(os.path.join(image_folder, image_id))
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
        mask = _read_binary(os.path.join(image_folder, masks[image_id][0][0]))
        inner = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        saturated = hsv[..., 1] > 120
        assert saturated[inner].mean() > saturated[~mask].mean()


def test_mask_train_split_has_empty_localization(generated):
    data_root, metadata_root = generated
    image_ids, _, masks = _mask_metadata(metadata_root, "train")
    assert len(image_ids) == COUNTS["train"] and masks == {}
    assert not os.path.exists(os.path.join(data_root, DATASET_NAME, "masks", "train"))


def test_loaders_read_both_datasets(generated):
    data_root, metadata_root = generated
    loader = get_data_loader("test", data_root=data_root, metadata_root=metadata_root,
                             dataset_name=DATASET_NAME, batch_size=5, workers=0)
    images, labels, image_ids = next(iter(loader))
    assert images.shape == (5, 3, 224, 224) and labels.tolist() == [0, 1, 2, 3, 0]
    image_ids_mask, labels_mask, _ = _mask_metadata(metadata_root, "test")
    metadata = SplitMetadata(MASK_DATASET_NAME, "test", "", image_ids_mask, labels_mask)
    dataset = WSOLDataset(data_root, metadata, build_transform("test"))
    assert dataset[0][2] == image_ids[0] and dataset[0][0].shape == (3, 224, 224)


def _folder_bytes(root: str) -> dict[str, bytes]:
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                files[os.path.relpath(path, root)] = handle.read()
    return files


def test_generation_is_deterministic_given_the_seed(generated, tmp_path):
    first = _folder_bytes(os.path.dirname(generated[0]))
    again = _folder_bytes(os.path.dirname(_generate(tmp_path / "again")[0]))
    other = _folder_bytes(os.path.dirname(_generate(tmp_path / "other", seed=4)[0]))
    assert first == again
    assert first != other


def test_render_image_is_deterministic_and_consistent():
    one = render_image(np.random.default_rng(5), 3, 128, with_ignore=True)
    two = render_image(np.random.default_rng(5), 3, 128, with_ignore=True)
    assert np.array_equal(one.image, two.image) and one.boxes == two.boxes
    assert one.image.dtype == np.uint8 and one.image.ndim == 3
    assert all(mask.shape == one.image.shape[:2] for mask in one.instance_masks)


def test_refuses_to_overwrite_without_flag(tmp_path, capsys):
    data_root, metadata_root = _generate(tmp_path)
    with pytest.raises(FileExistsError, match="--overwrite"):
        _generate(tmp_path)
    stale = os.path.join(data_root, DATASET_NAME, "stale.txt")
    open(stale, "w").close()
    argv = ["--data_root", data_root, "--metadata_root", metadata_root, "--num_train", "4",
            "--num_val", "4", "--num_test", "4", "--image_size", "64"]
    with pytest.raises(SystemExit, match="--overwrite"):
        main(argv)
    main([*argv, "--overwrite"])
    assert "wrote SYNTHETIC" in capsys.readouterr().out
    assert not os.path.exists(stale)
    assert len(load_metadata(metadata_root, DATASET_NAME, "val").image_ids) == 4


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="non-negative"):
        generate_synthetic_dataset(str(tmp_path), str(tmp_path), num_train=-1)
    with pytest.raises(ValueError, match="at least 64"):
        generate_synthetic_dataset(str(tmp_path), str(tmp_path), image_size=32)
