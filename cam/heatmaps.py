r"""Heatmaps and overlays for a folder of images: `python -m cam.heatmaps`.

Example::

    python -m cam.heatmaps --images photos/ --checkpoint last_checkpoint.pth.tar \
        --method cam --output heatmaps/

The model (architecture, family, structure, number of classes, feature-map size) is read from
the checkpoint when it records it, as this project's training checkpoints do; `--architecture`,
`--num_classes` and the other model flags are needed only for checkpoints that record nothing
(a bare state dict) and override what the checkpoint records.

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
import sys
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
from wsol.engine.flags import str2bool
from wsol.engine.runtime import setup_logging
from wsol.models.base import DualBranchModel
from wsol.models.checkpoints import (
    CheckpointMismatchError,
    CheckpointReadError,
    model_from_checkpoint,
)
from wsol.models.registry import FAMILIES, MODEL_STRUCTURES, family_for_method
from wsol.report.overlays import blend_heatmap, rgb_to_bgr

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
        prog="python -m cam.heatmaps",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--images", type=Path, required=True, help="folder of images (searched recursively)"
    )
    parser.add_argument(
        "--output", type=Path, required=True, help="folder for .npy heatmaps and .png overlays"
    )
    parser.add_argument(
        "--architecture",
        default=None,
        help="backbone; default: the one the checkpoint records",
    )
    parser.add_argument(
        "--family",
        choices=FAMILIES,
        default=None,
        help="model family; default: the checkpoint's, else cam for --method cam, grad otherwise",
    )
    parser.add_argument(
        "--model_structure",
        choices=MODEL_STRUCTURES,
        default=None,
        help="default: the checkpoint's, else vanilla",
    )
    parser.add_argument(
        "--num_classes", type=int, default=None, help="default: the checkpoint's"
    )
    parser.add_argument(
        "--large_feature_map",
        type=str2bool,
        nargs="?",
        const=True,
        default=None,
        help="28x28 feature maps (TRUE/FALSE, like main.py); default: the checkpoint's, else false",
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="trained model checkpoint")
    parser.add_argument(
        "--method", choices=tuple(CAM_METHODS), required=True, help="heatmap method"
    )
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
    parser.add_argument(
        "--postprocess",
        choices=POSTPROCESS_BACKENDS,
        default="opencv",
        help="heatmap resize and normalisation: OpenCV (authors) or torch",
    )
    parser.add_argument("--batch_size", type=int, default=16, help="images per batch")
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="cpu, cuda or cuda:N",
    )
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch_size must be positive")
    if args.class_index is not None and args.class_index < 0:
        parser.error("--class_index must be >= 0")
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
    """Open an image as RGB and return it resized to 224×224 and as a normalised tensor.

    Raises:
        OSError: the file cannot be decoded as an image (the message names it).
    """
    try:
        with Image.open(path) as image:
            resized = _RESIZE(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as error:
        raise OSError(f"cannot read image {path}: {error}") from None
    return resized, _TO_INPUT(resized)


def overlay(image: Image.Image, heatmap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The JET-coloured heatmap (``(H, W)`` in [0, 1]) blended over the RGB image of its size,
    as a uint8 BGR array ready for `cv2.imwrite`."""
    return blend_heatmap(rgb_to_bgr(np.asarray(image)), heatmap, alpha)


def _load_model(args: argparse.Namespace) -> DualBranchModel:
    """The checkpoint's model; flags given override what the checkpoint records."""
    model = model_from_checkpoint(
        args.checkpoint,
        defaults={
            "family": family_for_method(args.method),
            "model_structure": "vanilla",
            "large_feature_map": False,
        },
        architecture=args.architecture,
        family=args.family,
        model_structure=args.model_structure,
        num_classes=args.num_classes,
        large_feature_map=args.large_feature_map,
    )
    if args.class_index is not None and args.class_index >= model.num_classes:
        raise ValueError(f"--class_index must lie in [0, {model.num_classes})")
    return model.to(args.device).eval()


def _write(output: Path, relative: Path, image: Image.Image, heatmap: np.ndarray) -> None:
    target = output / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    np.save(target.with_name(f"{target.name}.npy"), heatmap.astype(np.float32))
    cv2.imwrite(str(target.with_name(f"{target.name}.png")), overlay(image, heatmap))


def main(argv: Sequence[str] | None = None) -> int:
    """Write heatmaps and overlays for every image of `--images`; return the exit status.

    Bad input (no images, a checkpoint that is missing, unreadable or does not fit, an
    unreadable image) prints one line `error: ...` and returns 1.
    """
    setup_logging(None)
    args = parse_args(argv)
    try:
        return _run(args)
    except (OSError, CheckpointReadError, CheckpointMismatchError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)  # noqa: T201
        return 1


def _run(args: argparse.Namespace) -> int:
    paths = find_images(args.images)
    model = _load_model(args)
    logger.info(
        "%s heatmaps of %d images with %s/%s/%s on %s; explained class: %s",
        args.method,
        len(paths),
        model.architecture,
        model.family,
        model.model_structure,
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
