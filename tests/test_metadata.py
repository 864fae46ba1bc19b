"""Metadata parsing: the shipped files, spot checks of SPEC §7.10, and malformed input."""

import os
import shutil

import pytest

from wsol.data.metadata import MetadataError, load_metadata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METADATA = os.path.join(ROOT, "metadata")


@pytest.mark.parametrize(("dataset", "split", "images", "records"), [
    ("CUB", "val", 1000, 1000), ("CUB", "test", 5794, 5794),
    ("ILSVRC", "val", 10000, 18532), ("ILSVRC", "test", 50000, 80477),
    ("CARS", "test", 8041, 8041), ("OpenImages", "val", 2500, 2500),
    ("OpenImages", "test", 5000, 5000),
])
def test_shipped_metadata_parses(dataset: str, split: str, images: int, records: int) -> None:
    metadata = load_metadata(METADATA, dataset, split)
    assert len(metadata.image_ids) == images
    if metadata.has_masks:
        assert len(metadata.mask_paths) == records
    else:
        assert sum(len(boxes) for boxes in metadata.boxes.values()) == records


@pytest.mark.parametrize(("dataset", "split", "images"), [
    ("CUB", "train", 5994), ("OpenImages", "train", 29819), ("CARS", "train", 8144)])
def test_train_metadata_without_localization(dataset: str, split: str, images: int) -> None:
    assert len(load_metadata(METADATA, dataset, split, localization=False).image_ids) == images


def test_spot_checks() -> None:
    cub = load_metadata(METADATA, "CUB", "val")
    assert [cub.boxes[i][0] for i in cub.image_ids[:3]] == [
        (176, 136, 459, 291), (44, 183, 426, 254), (437, 42, 834, 422)]
    assert [cub.image_sizes[i] for i in cub.image_ids[:3]] == [(560, 419), (576, 432), (999, 587)]
    ilsvrc = load_metadata(METADATA, "ILSVRC", "test")
    assert ilsvrc.boxes[ilsvrc.image_ids[1]] == [(45, 49, 499, 162), (2, 69, 437, 207)]
    assert ilsvrc.class_labels[ilsvrc.image_ids[0]] == 65
    openimages = load_metadata(METADATA, "OpenImages", "val")
    masks, ignore = openimages.mask_paths["val/0bt_c3/3a29f0b33894d4a6.jpg"]
    assert len(masks) == 2 and ignore.endswith("_ignore.png")


def _copy_split(tmp_path: str, dataset: str = "CUB", split: str = "val") -> str:
    target = os.path.join(tmp_path, dataset, split)
    shutil.copytree(os.path.join(METADATA, dataset, split), target)
    return target


def _edit_line(path: str, number: int, text: str | None) -> None:
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    if text is None:
        lines.append(lines[number - 1])
    else:
        lines[number - 1] = text
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))


@pytest.mark.parametrize(("file_name", "line", "text", "message"), [
    ("localization.txt", 3, "a.jpg,1,2,3", "localization.txt, line 3: expected 5"),
    ("localization.txt", 2, None, None),
    ("class_labels.txt", 4, "{id},x", "class_labels.txt, line 4: label must be an integer"),
    ("class_labels.txt", 5, "{id},200", "class_labels.txt, line 5: label 200 outside"),
    ("image_sizes.txt", 6, "{id},0,10", "image_sizes.txt, line 6: image size must be positive"),
    ("image_ids.txt", 7, "", "image_ids.txt, line 7: empty line"),
    ("image_ids.txt", 8, None, "image_ids.txt, line 1001: duplicate image id"),
])
def test_malformed_lines_name_file_and_line(tmp_path: str, file_name: str, line: int,
                                            text: str | None, message: str | None) -> None:
    folder = _copy_split(str(tmp_path))
    image_id = load_metadata(METADATA, "CUB", "val").image_ids[line - 1]
    path = os.path.join(folder, file_name)
    _edit_line(path, line, None if text is None else text.format(id=image_id))
    if message is None:  # a repeated box line is a second box, not an error
        metadata = load_metadata(str(tmp_path), "CUB", "val")
        assert len(metadata.boxes[image_id]) == 2
        return
    with pytest.raises(MetadataError, match=message.replace("(", r"\(")):
        load_metadata(str(tmp_path), "CUB", "val")


@pytest.mark.parametrize(("box", "message"), [
    ("5,5,2,9", "0 <= x0 <= x1"), ("1,2,x,4", "x1 must be an integer"),
    ("1,2,9999,4", "lies outside"), ("-1,2,3,4", "0 <= x0 <= x1"),
])
def test_bad_boxes(tmp_path: str, box: str, message: str) -> None:
    folder = _copy_split(str(tmp_path))
    image_id = load_metadata(METADATA, "CUB", "val").image_ids[0]
    _edit_line(os.path.join(folder, "localization.txt"), 1, f"{image_id},{box}")
    with pytest.raises(MetadataError, match=f"localization.txt, line 1: .*{message}"):
        load_metadata(str(tmp_path), "CUB", "val")


def test_labels_for_unknown_ids(tmp_path: str) -> None:
    folder = _copy_split(str(tmp_path))
    with open(os.path.join(folder, "class_labels.txt"), "a", encoding="utf-8") as handle:
        handle.write("\nextra/image.jpg,3")
    with pytest.raises(MetadataError, match="1 image ids are not in"):
        load_metadata(str(tmp_path), "CUB", "val")


def test_missing_records_and_folders(tmp_path: str) -> None:
    folder = _copy_split(str(tmp_path))
    _edit_line(os.path.join(folder, "image_sizes.txt"), 1, "other.jpg,10,10")
    with pytest.raises(MetadataError, match="image_sizes.txt: 1 image ids .* have no record"):
        load_metadata(str(tmp_path), "CUB", "val")
    with pytest.raises(MetadataError, match="metadata folder not found"):
        load_metadata(str(tmp_path), "CUB", "test")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_metadata(str(tmp_path), "CUBS", "val")


def test_openimages_ignore_path_rules(tmp_path: str) -> None:
    folder = _copy_split(str(tmp_path), "OpenImages", "val")
    path = os.path.join(folder, "localization.txt")
    _edit_line(path, 1, "val/01226z/32fdab44f6e415f1.jpg,val/01226z/m.png,")
    with pytest.raises(MetadataError, match="line 1: first line of .* must name its ignore"):
        load_metadata(str(tmp_path), "OpenImages", "val")
