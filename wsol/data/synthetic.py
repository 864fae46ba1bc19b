"""The built-in synthetic WSOL dataset.

Each image shows one to three objects of one class on a cluttered background: smooth colour
noise, pixel noise and soft, untextured distractor blobs that belong to no class. A class is the
object itself: a striped disc, a checkered square, a shaded triangle or a ring, each with its own
hue family, at a random position, scale, aspect ratio and rotation. Image sides vary between half
and all of ``image_size``.

Two datasets are written from one run:

* ``SYNTHETIC`` (boxes, like CUB): images ``{data_root}/SYNTHETIC/{split}/{class}/{n}.jpg`` and
  metadata ``{metadata_root}/SYNTHETIC/{split}/`` with one tight box per object.
* ``SYNTHETIC_MASK`` (masks, like OpenImages): the same images and image ids, metadata
  ``{metadata_root}/SYNTHETIC_MASK/{split}/`` with an empty ``image_sizes.txt`` and, for val and
  test, one ``image_id,mask_path,ignore_path`` line per object. Mask paths are relative to
  ``{data_root}/SYNTHETIC`` (``masks/{split}/{class}/{n}_m{k}.png``, ``…/{n}_ignore.png``);
  masks are 0/255 PNGs at the original image size. Some images get an ignore rectangle that
  partially overlaps an object.

Usage::

    python -m wsol.data.synthetic --data_root dataset [--metadata_root DIR] [--overwrite]

The metadata goes to ``{data_root}/metadata`` unless ``--metadata_root`` says otherwise, so the
generated files stay out of the shipped ``metadata/`` folder; pass the same folder to
``main.py --metadata_root``. Metadata files end with a newline.
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from wsol.data.metadata import Box

__all__ = [
    "CLASS_NAMES",
    "DATASET_NAME",
    "MASK_DATASET_NAME",
    "MASK_FOLDER",
    "SyntheticImage",
    "generate_synthetic_dataset",
    "main",
    "render_image",
]

DATASET_NAME = "SYNTHETIC"
MASK_DATASET_NAME = "SYNTHETIC_MASK"
MASK_FOLDER = "masks"
CLASS_NAMES = ("striped_disc", "checker_square", "triangle", "ring")
SPLITS = ("train", "val", "test")

_CLASS_HUES = (0, 110, 60, 150)
_HUE_JITTER = 8
_INSTANCE_COUNT_PROBS = (0.75, 0.2, 0.05)
_IGNORE_PROB = 0.3
_PLACEMENT_TRIES = 30
_JPEG_QUALITY = 92
_REACH = 1.15  # farthest object point from the centre, in units of the larger radius


@dataclass
class SyntheticImage:
    """One rendered image with its ground truth.

    Attributes:
        image: ``(H, W, 3)`` uint8 BGR image.
        instance_masks: one ``(H, W)`` bool mask per object, largest object first.
        ignore_mask: ``(H, W)`` bool ignore region (all False when the image has none).
    """

    image: np.ndarray
    instance_masks: list[np.ndarray]
    ignore_mask: np.ndarray

    @property
    def boxes(self) -> list[Box]:
        """Tight inclusive ``(x0, y0, x1, y1)`` box of every object, in instance order."""
        return [_tight_box(mask) for mask in self.instance_masks]


def render_image(rng: np.random.Generator, label: int, image_size: int,
                 with_ignore: bool) -> SyntheticImage:
    """Render one image of class ``label``.

    Args:
        rng: source of all randomness of the image.
        label: class index into :data:`CLASS_NAMES`.
        image_size: largest side; each side is drawn from ``[image_size // 2, image_size]``.
        with_ignore: allow an ignore rectangle (drawn with probability 0.3).
    """
    width, height = (int(v) for v in rng.integers(image_size // 2, image_size + 1, size=2))
    image = _background(rng, height, width)
    masks = _place_objects(rng, label, height, width)
    for mask in masks:
        ys, xs = np.nonzero(mask)
        image[ys, xs] = _TEXTURES[label](rng, xs.astype(np.float32), ys.astype(np.float32),
                                         _class_colour(rng, label))
    image += rng.standard_normal(image.shape, dtype=np.float32) * 8.0
    ignore = np.zeros((height, width), dtype=bool)
    if with_ignore and rng.random() < _IGNORE_PROB:
        ignore = _ignore_rectangle(rng, masks[0])
    return SyntheticImage(np.clip(image, 0, 255).astype(np.uint8), masks, ignore)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth colour field with soft distractor blobs, as float32 ``(H, W, 3)``."""
    coarse = rng.uniform(60, 200, size=(4, 4, 3)).astype(np.float32)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    side = min(height, width)
    for _ in range(int(rng.integers(3, 9))):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = tuple(int(a) for a in rng.uniform(0.04, 0.18, size=2) * side)
        colour = _hsv_to_bgr(rng.uniform(0, 180), rng.uniform(0, 110), rng.uniform(60, 230))
        _blend_blob(image, centre, axes, float(rng.uniform(0, 180)), colour)
    return image


def _blend_blob(image: np.ndarray, centre: tuple[int, int], axes: tuple[int, int],
                angle: float, colour: np.ndarray) -> None:
    """Alpha-blend a blurred filled ellipse into ``image`` in place, within its reach only."""
    sigma = max(axes) / 3 + 1
    reach = max(axes) + int(3 * sigma) + 1
    x0, y0 = max(0, centre[0] - reach), max(0, centre[1] - reach)
    x1, y1 = min(image.shape[1], centre[0] + reach + 1), min(image.shape[0], centre[1] + reach + 1)
    blob = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    cv2.ellipse(blob, (centre[0] - x0, centre[1] - y0), axes, angle, 0, 360, 255, -1)
    alpha = cv2.GaussianBlur(blob.astype(np.float32) / 255.0, (0, 0), sigma)[..., None]
    region = image[y0:y1, x0:x1]
    region += alpha * (colour - region)


def _place_objects(rng: np.random.Generator, label: int, height: int, width: int
                   ) -> list[np.ndarray]:
    """Draw non-overlapping object masks, largest first; the first always fits."""
    count = int(rng.choice(len(_INSTANCE_COUNT_PROBS), p=_INSTANCE_COUNT_PROBS)) + 1
    side = min(height, width)
    scale = 0.55 if count == 1 else 0.4
    sizes = sorted(rng.uniform(0.5, 1.0, size=count) * scale * side, reverse=True)
    masks: list[np.ndarray] = []
    occupied = np.zeros((height, width), dtype=bool)
    for size in sizes:
        mask = _try_place(rng, label, float(size), height, width, occupied)
        if mask is None:
            break
        masks.append(mask)
        occupied |= cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    return masks


def _try_place(rng: np.random.Generator, label: int, size: float, height: int, width: int,
               occupied: np.ndarray) -> np.ndarray | None:
    """Return a mask of one object that avoids ``occupied``, or None after repeated failures."""
    for _ in range(_PLACEMENT_TRIES):
        aspect = rng.uniform(0.7, 1.4)
        radii = (size / 2 * np.sqrt(aspect), size / 2 / np.sqrt(aspect))
        reach = _REACH * max(radii) + 2
        if 2 * reach >= min(height, width):
            radii = tuple(r * min(height, width) / (2 * reach + 2) for r in radii)
            reach = _REACH * max(radii) + 2
        centre = (rng.uniform(reach, width - reach), rng.uniform(reach, height - reach))
        mask = _SHAPES[label](rng, height, width, centre, radii, rng.uniform(0, 180))
        if mask.any() and not (mask & occupied).any():
            return mask
    return None


def _ellipse_mask(height: int, width: int, centre: tuple[float, float],
                  radii: tuple[float, float], angle: float) -> np.ndarray:
    canvas = np.zeros((height, width), dtype=np.uint8)
    cv2.ellipse(canvas, (round(centre[0]), round(centre[1])),
                (max(1, round(radii[0])), max(1, round(radii[1]))), angle, 0, 360, 255, -1)
    return canvas > 0


def _polygon_mask(height: int, width: int, points: np.ndarray) -> np.ndarray:
    canvas = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(canvas, [np.round(points).astype(np.int32)], 255)
    return canvas > 0


def _disc_shape(_rng: np.random.Generator, height: int, width: int, centre: tuple[float, float],
                radii: tuple[float, float], angle: float) -> np.ndarray:
    return _ellipse_mask(height, width, centre, radii, angle)


def _square_shape(_rng: np.random.Generator, height: int, width: int,
                  centre: tuple[float, float], radii: tuple[float, float],
                  angle: float) -> np.ndarray:
    corners = cv2.boxPoints((centre, (radii[0] * 1.6, radii[1] * 1.6), angle))
    return _polygon_mask(height, width, corners)


def _triangle_shape(rng: np.random.Generator, height: int, width: int,
                    centre: tuple[float, float], radii: tuple[float, float],
                    angle: float) -> np.ndarray:
    turns = np.deg2rad(angle + np.array([90.0, 210.0, 330.0]) + rng.uniform(-12, 12, size=3))
    points = np.stack([centre[0] + radii[0] * np.cos(turns),
                       centre[1] - radii[1] * np.sin(turns)], axis=1)
    return _polygon_mask(height, width, points)


def _ring_shape(rng: np.random.Generator, height: int, width: int, centre: tuple[float, float],
                radii: tuple[float, float], angle: float) -> np.ndarray:
    inner = rng.uniform(0.45, 0.65)
    outer_mask = _ellipse_mask(height, width, centre, radii, angle)
    inner_mask = _ellipse_mask(height, width, centre, (radii[0] * inner, radii[1] * inner), angle)
    return outer_mask & ~inner_mask


def _class_colour(rng: np.random.Generator, label: int) -> np.ndarray:
    hue = (_CLASS_HUES[label] + rng.uniform(-_HUE_JITTER, _HUE_JITTER)) % 180
    return _hsv_to_bgr(hue, rng.uniform(170, 255), rng.uniform(150, 255))


def _hsv_to_bgr(hue: float, saturation: float, value: float) -> np.ndarray:
    """Convert one OpenCV HSV colour (H in [0, 180), S and V in [0, 255]) to float32 BGR."""
    pixel = np.array([[[hue * 2.0, saturation / 255.0, value / 255.0]]], dtype=np.float32)
    return cv2.cvtColor(pixel, cv2.COLOR_HSV2BGR)[0, 0] * 255.0


def _rotated(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates rotated by a random angle."""
    theta = rng.uniform(0, np.pi)
    cos, sin = np.float32(np.cos(theta)), np.float32(np.sin(theta))
    return xs * cos + ys * sin, -xs * sin + ys * cos


def _two_tone(pattern: np.ndarray, colour: np.ndarray, other: np.ndarray) -> np.ndarray:
    return np.where(pattern[:, None], colour, other).astype(np.float32)


def _stripes(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray, colour: np.ndarray
             ) -> np.ndarray:
    u, _ = _rotated(rng, xs, ys)
    period = rng.uniform(5, 10)
    light = np.full(3, rng.uniform(215, 250), dtype=np.float32)
    return _two_tone(np.floor(u / period) % 2 == 0, colour, light)


def _checker(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray, colour: np.ndarray
             ) -> np.ndarray:
    u, v = _rotated(rng, xs, ys)
    period = rng.uniform(6, 12)
    dark = np.full(3, rng.uniform(10, 50), dtype=np.float32)
    return _two_tone((np.floor(u / period) + np.floor(v / period)) % 2 == 0, colour, dark)


def _shaded(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray, colour: np.ndarray
            ) -> np.ndarray:
    u, _ = _rotated(rng, xs, ys)
    shade = 0.75 + 0.25 * np.cos(u / rng.uniform(20, 40))
    return (colour * shade[:, None]).astype(np.float32)


def _dotted(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray, colour: np.ndarray
            ) -> np.ndarray:
    u, v = _rotated(rng, xs, ys)
    period = rng.uniform(6, 10)
    dots = (np.abs(u % period - period / 2) < 1.5) & (np.abs(v % period - period / 2) < 1.5)
    white = np.full(3, 240, dtype=np.float32)
    return _two_tone(~dots, colour, white)


Shape = Callable[[np.random.Generator, int, int, tuple[float, float], tuple[float, float], float],
                 np.ndarray]
Texture = Callable[[np.random.Generator, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
_SHAPES: tuple[Shape, ...] = (_disc_shape, _square_shape, _triangle_shape, _ring_shape)
_TEXTURES: tuple[Texture, ...] = (_stripes, _checker, _shaded, _dotted)


def _ignore_rectangle(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """Return a rectangle centred on a random contour pixel of ``mask`` (partial overlap)."""
    eroded = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    ys, xs = np.nonzero(mask & ~eroded)
    pick = int(rng.integers(len(xs)))
    cx, cy = int(xs[pick]), int(ys[pick])
    x0, y0, x1, y1 = _tight_box(mask)
    half_w = max(2, int((x1 - x0) * rng.uniform(0.15, 0.3)))
    half_h = max(2, int((y1 - y0) * rng.uniform(0.15, 0.3)))
    ignore = np.zeros_like(mask)
    ignore[max(0, cy - half_h):cy + half_h + 1, max(0, cx - half_w):cx + half_w + 1] = True
    return ignore


def _tight_box(mask: np.ndarray) -> Box:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


@dataclass
class _SplitRecords:
    """Metadata lines of one split for both datasets."""

    image_ids: list[str]
    class_labels: list[str]
    image_sizes: list[str]
    boxes: list[str]
    masks: list[str]


def _generate_split(data_root: str, split: str, count: int, image_size: int,
                    seed: int) -> _SplitRecords:
    """Render and write the images (and val/test masks) of one split."""
    records = _SplitRecords([], [], [], [], [])
    with_masks = split != "train"
    for n in range(count):
        label = n % len(CLASS_NAMES)
        rng = np.random.default_rng([seed, SPLITS.index(split), n])
        sample = render_image(rng, label, image_size, with_ignore=with_masks)
        relative = f"{split}/{CLASS_NAMES[label]}/{n:05d}"
        image_id = f"{relative}.jpg"
        _write_image(os.path.join(data_root, DATASET_NAME, image_id), sample.image)
        height, width = sample.image.shape[:2]
        records.image_ids.append(image_id)
        records.class_labels.append(f"{image_id},{label}")
        records.image_sizes.append(f"{image_id},{width},{height}")
        records.boxes.extend(f"{image_id},{x0},{y0},{x1},{y1}" for x0, y0, x1, y1 in sample.boxes)
        if with_masks:
            records.masks.extend(_write_masks(data_root, image_id, relative, sample))
    return records


def _write_masks(data_root: str, image_id: str, relative: str,
                 sample: SyntheticImage) -> list[str]:
    """Write the instance and ignore masks of one image; return its mask metadata lines."""
    ignore_path = f"{MASK_FOLDER}/{relative}_ignore.png"
    _write_image(os.path.join(data_root, DATASET_NAME, ignore_path), _to_png(sample.ignore_mask))
    lines = []
    for k, mask in enumerate(sample.instance_masks):
        mask_path = f"{MASK_FOLDER}/{relative}_m{k}.png"
        _write_image(os.path.join(data_root, DATASET_NAME, mask_path), _to_png(mask))
        lines.append(f"{image_id},{mask_path},{ignore_path if k == 0 else ''}")
    return lines


def _to_png(mask: np.ndarray) -> np.ndarray:
    return mask.astype(np.uint8) * 255


def _write_image(path: str, image: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY] if path.endswith(".jpg") else []
    if not cv2.imwrite(path, image, params):
        raise OSError(f"could not write {path}")


def _write_lines(path: str, lines: Sequence[str]) -> None:
    """Write one record per line, each ending with a newline (an empty list: an empty file)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(f"{line}\n" for line in lines)


def _write_metadata(metadata_root: str, split: str, records: _SplitRecords) -> None:
    """Write the split's metadata of ``SYNTHETIC`` (boxes) and ``SYNTHETIC_MASK`` (masks)."""
    box_folder = os.path.join(metadata_root, DATASET_NAME, split)
    mask_folder = os.path.join(metadata_root, MASK_DATASET_NAME, split)
    for folder, sizes, localization in ((box_folder, records.image_sizes, records.boxes),
                                        (mask_folder, [], records.masks)):
        _write_lines(os.path.join(folder, "image_ids.txt"), records.image_ids)
        _write_lines(os.path.join(folder, "class_labels.txt"), records.class_labels)
        _write_lines(os.path.join(folder, "image_sizes.txt"), sizes)
        _write_lines(os.path.join(folder, "localization.txt"), localization)


def _output_folders(data_root: str, metadata_root: str) -> list[str]:
    return [os.path.join(data_root, DATASET_NAME),
            os.path.join(metadata_root, DATASET_NAME),
            os.path.join(metadata_root, MASK_DATASET_NAME)]


def _prepare_outputs(folders: Sequence[str], overwrite: bool) -> None:
    """Refuse non-empty output folders, or delete them when ``overwrite`` is set."""
    for folder in folders:
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise FileExistsError(f"{folder} exists and is not a folder")
    occupied = [folder for folder in folders if os.path.isdir(folder) and os.listdir(folder)]
    if occupied and not overwrite:
        raise FileExistsError(f"{', '.join(occupied)} not empty; pass --overwrite to replace")
    for folder in occupied:
        shutil.rmtree(folder)


def generate_synthetic_dataset(data_root: str, metadata_root: str, *, num_train: int = 400,
                               num_val: int = 80, num_test: int = 80, image_size: int = 320,
                               seed: int = 0, overwrite: bool = False) -> dict[str, int]:
    """Write the ``SYNTHETIC`` images, masks and the metadata of both datasets.

    The output depends only on the arguments (not on the global RNG). Image ``n`` of a split
    has class ``n % 4``, so classes are balanced.

    Args:
        data_root: images go to ``{data_root}/SYNTHETIC``.
        metadata_root: metadata goes to ``{metadata_root}/SYNTHETIC`` and ``…/SYNTHETIC_MASK``.
        num_train: number of train images.
        num_val: number of val images.
        num_test: number of test images.
        image_size: largest image side (at least 64); sides vary down to half of it.
        seed: seed of the whole dataset.
        overwrite: replace existing non-empty output folders.

    Returns:
        ``{split: number of images}``.

    Raises:
        ValueError: a negative count or too small an image size.
        FileExistsError: an output folder is not empty and ``overwrite`` is False.
    """
    counts = {"train": num_train, "val": num_val, "test": num_test}
    if min(counts.values()) < 0:
        raise ValueError(f"image counts must be non-negative, found {counts}")
    if image_size < 64:
        raise ValueError(f"image_size must be at least 64, found {image_size}")
    _prepare_outputs(_output_folders(data_root, metadata_root), overwrite)
    for split, count in counts.items():
        records = _generate_split(data_root, split, count, image_size, seed)
        _write_metadata(metadata_root, split, records)
    return counts


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m wsol.data.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_root", default="dataset/",
                        help="images go to {data_root}/SYNTHETIC")
    parser.add_argument("--metadata_root", default=None,
                        help="metadata root (default: {data_root}/metadata)")
    parser.add_argument("--num_train", type=int, default=400, help="train images")
    parser.add_argument("--num_val", type=int, default=80, help="val images")
    parser.add_argument("--num_test", type=int, default=80, help="test images")
    parser.add_argument("--image_size", type=int, default=320, help="largest image side")
    parser.add_argument("--seed", type=int, default=0, help="seed of the whole dataset")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing SYNTHETIC output folders")
    args = parser.parse_args(argv)
    if args.metadata_root is None:
        args.metadata_root = os.path.join(args.data_root, "metadata")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point; prints a one-line summary."""
    args = _parse_args(argv)
    try:
        counts = generate_synthetic_dataset(
            args.data_root, args.metadata_root, num_train=args.num_train, num_val=args.num_val,
            num_test=args.num_test, image_size=args.image_size, seed=args.seed,
            overwrite=args.overwrite)
    except (FileExistsError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    print(f"wrote {DATASET_NAME} ({', '.join(f'{s}: {n}' for s, n in counts.items())} images) "
          f"to {os.path.join(args.data_root, DATASET_NAME)} and metadata for {DATASET_NAME}, "
          f"{MASK_DATASET_NAME} to {args.metadata_root}")


if __name__ == "__main__":
    main()
