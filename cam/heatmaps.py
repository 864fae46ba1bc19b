r"""Heatmaps and overlays for a folder of images: `python -m cam.heatmaps`.

Example::

    python -m cam.heatmaps --images photos/ --architecture resnet50 --family cam \
        --model_structure b2 --num_classes 200 --checkpoint last_checkpoint.pth.tar \
        --method cam --output heatmaps/

Every image is opened with PIL, converted to RGB, resized to 224×224 (bilinear) and normalised
with the ImageNet mean and std (SPEC §2.2). For `<output>/<relative path>` it writes
`<name>.npy` (the 224×224 float32 heatmap in [0, 1]) and `<name>.png` (the heatmap in the JET
colormap blended half and half over the resized image), plus `classes.csv` listing the class
explained for each image.

A plain folder has no ground truth, so without `--class_index` the explained class is the one
the softmax head (head 1) predicts; for a b2 model the heatmap of that class still comes from the
sigmoid head, with the positive clamp unless `--no_clamp` (SPEC §6, A2, A19).
"""

from __future__ import annotations

import argparse
import csv
import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torchvision import transforms
from tqdm import tqdm

from cam.base import CAMResult
from cam.postprocess import EVAL_SIZE, POSTPROCESS_BACKENDS, postprocess_maps
from cam.registry import CAM_METHODS, get_method
from wsol.models.checkpoints import load_model_checkpoint
from wsol.models.registry import ARCHITECTURES, FAMILIES, MODEL_STRUCTURES, build_model, family_for_method

__all__ = ["IMAGE_SUFFIXES", "find_images", "main", "overlay", "parse_args", "preprocess"]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
_RESIZE = transforms.Resize((EVAL_SIZE, EVAL_SIZE))
_TO_INPUT = transforms.Compose([transforms.ToTensor(), transforms.Normalize(_MEAN, _STD)])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m cam.heatmaps", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--images", type=Path, required=True, help="folder of images (searched recursively)"
    )
    parser.add_argument(
        "--output", type=Path, required=True, help="folder for .npy heatmaps and .png overlays"
    )
    parser.add_argument("--architecture", choices=ARCHITECTURES, required=True)
    parser.add_argument(
        "--family",
        choices=FAMILIES,
        default=None,
        help="model family; default: cam for --method cam, grad otherwise",
    )
    parser.add_argument("--model_structure", choices=MODEL_STRUCTURES, default="vanilla")
    parser.add_argument("--num_classes", type=int, required=True)
    parser.add_argument("--large_feature_map", action="store_true")
    parser.add_argument("--checkpoint", type=Path, required=True, help="trained model checkpoint")
    parser.add_argument("--method", choices=tuple(CAM_METHODS), required=True)
    parser.add_argument(
        "--class_index",
        type=int,
        default=None,
        help="class to explain for every image; default: head 1's prediction",
    )
    parser.add_argument(
        "--no_clamp",
        action="store_true",
        help="keep negative channel weights of the sigmoid head (ablation)",
    )
    parser.add_argument("--postprocess", choices=POSTPROCESS_BACKENDS, default="opencv")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.family is None:
        args.family = family_for_method(args.method)
    if args.batch_size < 1:
        parser.error("--batch_size must be positive")
    if args.class_index is not None and not 0 <= args.class_index < args.num_classes:
        parser.error(f"--class_index must lie in [0, {args.num_classes})")
    return args


def find_images(root: Path) -> list[Path]:
    """Image files under `root`, sorted.

    Raises:
        FileNotFoundError: if `root` is not a folder or holds no image.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no image ({', '.join(IMAGE_SUFFIXES)}) under {root}")
    return paths


def preprocess(path: Path) -> tuple[Image.Image, torch.Tensor]:
    """Open an image as RGB and return it resized to 224×224 and as a normalised tensor."""
    with Image.open(path) as image:
        resized = _RESIZE(image.convert("RGB"))
    return resized, _TO_INPUT(resized)


def overlay(image: Image.Image, heatmap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the JET-coloured heatmap over the image.

    Args:
        image: RGB image of the heatmap's size.
        heatmap: (H, W) float map in [0, 1].
        alpha: weight of the heatmap.

    Returns:
        (H, W, 3) uint8 BGR image, ready for `cv2.imwrite`.
    """
    colored = cv2.applyColorMap(np.uint8(255 * heatmap), cv2.COLORMAP_JET)
    picture = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)
    return cv2.addWeighted(picture, 1 - alpha, colored, alpha, 0)


def _load_model(args: argparse.Namespace) -> torch.nn.Module:
    model = build_model(
        args.architecture,
        args.family,
        args.num_classes,
        model_structure=args.model_structure,
        large_feature_map=args.large_feature_map,
    )
    load_model_checkpoint(model, args.checkpoint)
    return model.to(args.device).eval()


def _write(output: Path, relative: Path, image: Image.Image, heatmap: np.ndarray) -> None:
    target = output / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    np.save(target.with_name(f"{target.name}.npy"), heatmap.astype(np.float32))
    cv2.imwrite(str(target.with_name(f"{target.name}.png")), overlay(image, heatmap))


def main(argv: Sequence[str] | None = None) -> int:
    """Write heatmaps and overlays for every image of `--images`; return the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    paths = find_images(args.images)
    model = _load_model(args)
    logger.info(
        "%s heatmaps of %d images with %s/%s/%s on %s; explained class: %s",
        args.method,
        len(paths),
        args.architecture,
        args.family,
        args.model_structure,
        args.device,
        "head 1's prediction" if args.class_index is None else args.class_index,
    )
    args.output.mkdir(parents=True, exist_ok=True)
    clamp = False if args.no_clamp else None
    rows = []
    with (
        get_method(args.method)(model, clamp_negative=clamp) as explainer,
        tqdm(total=len(paths), unit="img", desc=args.method, disable=None) as progress,
    ):
        for start in range(0, len(paths), args.batch_size):
            batch_paths = paths[start : start + args.batch_size]
            images, tensors = zip(*(preprocess(path) for path in batch_paths), strict=True)
            result: CAMResult = explainer.explain(torch.stack(tensors), args.class_index)
            heatmaps = postprocess_maps(result.maps, args.method, args.postprocess)
            heatmaps = np.asarray(
                heatmaps.cpu() if isinstance(heatmaps, torch.Tensor) else heatmaps
            )
            for path, image, heatmap, label in zip(
                batch_paths, images, heatmaps, result.labels.tolist(), strict=True
            ):
                relative = path.relative_to(args.images)
                _write(args.output, relative, image, heatmap)
                rows.append((relative.as_posix(), label))
            progress.update(len(batch_paths))
    with open(args.output / "classes.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("image", "class"), *rows])
    print(f"wrote {len(rows)} heatmaps and overlays ({args.method}) to {args.output}")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
