"""Command-line configuration: the authors' flags, an optional YAML file, validation.

`get_config(argv)` parses the flags of SPEC §8.1 (plus this project's own), overlays an optional
`--config file.yaml` (keys are flag names without dashes; the command line wins), applies the
derived settings, checks every cross-flag rule in `validate` and returns a read-only `Config`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import torch
import yaml

from cam import CAM_METHODS, POSTPROCESS_BACKENDS
from wsol.data.datasets import get_dataset
from wsol.data.metadata import NUM_CLASSES, missing_split_hint, split_folder
from wsol.engine.distributed import env_info
from wsol.engine.files import write_json_atomic
from wsol.engine.flags import str2bool
from wsol.metrics.boxes import threshold_list
from wsol.models.checkpoints import torchvision_weights_path
from wsol.models.freezing import unfreeze_names
from wsol.models.registry import architecture_help, family_for_method, get_backbone

__all__ = ["Config", "ConfigError", "PipelineError", "build_parser", "get_config",
           "log_ignored_flags", "str2bool", "validate", "write_config"]

logger = logging.getLogger(__name__)

AMP_MODES = ("off", "bf16", "fp16")
MODEL_STRUCTURES = ("vanilla", "b2")
EVAL_FRAME = 224
IGNORED_FLAGS = ("wandb", "project", "wandb_dir", "wandb_name", "alpha", "methods", "train_only")


class ConfigError(ValueError):
    """A flag value, a flag combination or the YAML file is invalid."""


class PipelineError(RuntimeError):
    """A run cannot proceed: missing or mismatching files, or results it would overwrite."""


class Config(argparse.Namespace):
    """Read-only namespace of the final settings."""

    def __init__(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"the configuration is frozen; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"the configuration is frozen; cannot delete {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a plain, JSON-serialisable dict."""
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in vars(self).items()}


def _architecture(value: str) -> str:
    """argparse type of ``--architecture``: a registered backbone or ``prefix:name``."""
    try:
        spec = get_backbone(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if not spec.families:
        raise argparse.ArgumentTypeError(
            f"{value} names a classifier wrapped in Python (wsol.models.adapter.dual_branch) and "
            f"cannot be built by name; choose one of {architecture_help()}")
    return value


def _bool_flag(group: argparse._ArgumentGroup, name: str, default: bool, help_text: str) -> None:
    group.add_argument(name, type=str2bool, nargs="?", const=True, default=default, help=help_text)


def _add_general(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("general")
    group.add_argument("--config", default=None, help="YAML file of flag values (flag names "
                       "without dashes); command-line flags override it")
    group.add_argument("--seed", type=int, default=42,
                       help="seed of Python, NumPy and torch (process r of torchrun: seed + r)")
    group.add_argument("--experiment_name", default="test_case",
                       help="the experiment's folder under --root")
    group.add_argument("--root", default="experiment/ILSVRC", help="experiments root folder")
    _bool_flag(group, "--override_cache", False, "training: delete an existing experiment folder; "
               "evaluation: overwrite the results of the same method and split")
    _bool_flag(group, "--eval_only", False, "evaluate a checkpoint instead of training")
    _bool_flag(group, "--debug", False, "log at DEBUG level (lists the trainable parameters)")
    group.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    group.add_argument("--gpus", default=None, help="authors' flag: comma-separated GPU ids; the "
                       "first one is used when CUDA is available and --device is auto")
    group.add_argument("--workers", type=int, default=4, help="DataLoader worker processes")
    group.add_argument("--amp", default="off", choices=AMP_MODES,
                       help="mixed precision of training and heatmaps: bf16 (CUDA or CPU) or "
                       "fp16 (CUDA only, with gradient scaling in training); off = float32")


def _add_data(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--dataset_name", default="CUB", choices=sorted(NUM_CLASSES),
                       help="dataset (sets the number of classes)")
    group.add_argument("--data_root", default="dataset/",
                       help="folder holding one image folder per dataset")
    group.add_argument("--metadata_root", default="metadata/",
                       help="folder holding {dataset}/{split}/ metadata files")
    group.add_argument("--mask_root", default="dataset/",
                       help="folder holding the ground-truth masks of mask datasets")
    _bool_flag(group, "--proxy_training_set", False, "train on image_ids_proxy.txt")
    _bool_flag(group, "--skip_unreadable", False, "skip (and count) images that cannot be "
               "decoded instead of stopping at the first one")
    group.add_argument("--num_val_sample_per_class", type=int, default=0,
                       help="images per class drawn for the val split (0 = all)")
    group.add_argument("--resize_size", type=int, default=256, help="training resize")
    group.add_argument("--crop_size", type=int, default=224,
                       help="training crop; evaluation needs 224 (the evaluation frame)")
    group.add_argument("--batch_size", type=int, default=64,
                       help="images per batch and process: under torchrun with N processes a "
                       "training step sees N x --batch_size images")


def _add_model(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--architecture", default=None, type=_architecture,
                       help=f"backbone: {architecture_help()}")
    group.add_argument("--method", default="cam", choices=sorted(CAM_METHODS),
                       help="heatmap method; 'cam' selects the CAM model family, the others "
                       "the gradient family (SPEC §3.1)")
    group.add_argument("--wsol_method", default="cam", choices=["cam"], help="authors' flag")
    group.add_argument("--model_structure", default="vanilla", choices=MODEL_STRUCTURES,
                       help="vanilla (softmax head) or b2 (plus the sigmoid branch)")
    _bool_flag(group, "--large_feature_map", False, "28x28 feature maps")
    _bool_flag(group, "--pretrained", True, "initialise from local torchvision ImageNet weights "
               "when no --ft_ckpt is given")
    group.add_argument("--pretrained_path", default=None,
                       help="torchvision weights: a file, or a folder holding vgg16.pth, "
                       "resnet50.pth, inception_v3.pth (or torchvision's file names); default: "
                       "torch's hub cache (never downloaded)")
    _bool_flag(group, "--init_weight", True, "authors' flag; initialisation is always applied")
    group.add_argument("--last_layer", default="fc", choices=["fc"], help="authors' flag")
    group.add_argument("--unfreeze_layer", default="none",
                       help="trainable part: all, none, branch2, or the model's head names "
                       "(fc, fc2, SPG_A4, SPG_A4_2, classifier, classifier_2)")
    group.add_argument("--branch_init", default="random", choices=["random", "clone"],
                       help="sigmoid head initialisation: random (authors' code) or a copy of "
                       "the softmax head (paper wording)")
    group.add_argument("--bn_mode", default="batch_stats", choices=["batch_stats", "frozen_eval"],
                       help="BatchNorm of a frozen backbone during fine-tuning (SPEC A6)")
    group.add_argument("--ft_ckpt", default=None, help="checkpoint to fine-tune or evaluate")


def _add_train(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--epochs", "--epoch", dest="epochs", type=int, default=None,
                       help="training epochs (required for training; 0 saves the loaded model)")
    group.add_argument("--lr", type=float, default=0.01,
                       help="learning rate of the backbone parameter group")
    group.add_argument("--lr_decay_frequency", type=int, default=30,
                       help="multiply the learning rates by 0.1 every N epochs")
    group.add_argument("--lr_classifier_ratio", type=float, default=10.0,
                       help="learning rate of the classifier parameter group = lr x this")
    group.add_argument("--momentum", type=float, default=0.9, help="SGD (Nesterov) momentum")
    group.add_argument("--weight_decay", type=float, default=1e-4, help="SGD weight decay")
    group.add_argument("--checkpoint_interval", type=int, default=1,
                       help="write {e}_checkpoint.pth.tar every N epochs (the final epoch always "
                       "writes last_checkpoint.pth.tar)")
    group.add_argument("--resume", default=None,
                       help="checkpoint to continue from, or 'auto' for the experiment's latest")
    group.add_argument("--log_every", type=int, default=20,
                       help="when stderr is not a terminal (a log file), log progress, losses "
                       "and speed every N training steps; 0: only once per epoch")


def _add_eval(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("evaluation")
    group.add_argument("--split", default="test", choices=["val", "test"],
                       help="split to evaluate")
    group.add_argument("--eval_checkpoint_type", default="last",
                       help="loads {log_folder}/{type}_checkpoint.pth.tar")
    group.add_argument("--cam_curve_interval", type=float, default=0.001,
                       help="step of the score-map thresholds")
    group.add_argument("--iou_threshold_list", type=int, nargs="+", default=[30, 50, 70],
                       help="IoU thresholds (percent) of MaxBoxAcc; must contain 50")
    _bool_flag(group, "--box_v2_metric", True, "MaxBoxAccV2 (multi-contour, multi-IoU)")
    _bool_flag(group, "--multi_contour_eval", True, "authors' flag, set by --box_v2_metric")
    _bool_flag(group, "--multi_iou_eval", True, "authors' flag, set by --box_v2_metric")
    group.add_argument("--loc_threshold", type=float, default=0.2,
                       help="score-map threshold of GT-known and Top-1 Loc")
    group.add_argument("--pxap_histogram_dtype", default="float64", choices=["float64", "float32"],
                       help="PxAP accumulators: exact counts, or the authors' float32 (SPEC A13)")
    group.add_argument("--loc_gt_boxes", default="first", choices=["first", "any"],
                       help="GT-known/Top-1 Loc against the first GT box or any GT box (SPEC A4)")
    group.add_argument("--clamp_negative", default="auto", choices=["auto", "true", "false"],
                       help="clamp negative channel weights: auto = on for b2 only")
    group.add_argument("--postprocess", default="opencv", choices=list(POSTPROCESS_BACKENDS),
                       help="heatmap resize and normalisation: OpenCV (authors) or torch")
    group.add_argument("--max_images", type=int, default=None,
                       help="evaluate only the first N images of the split")
    _bool_flag(group, "--save_scoremaps", False,
               "save {log_folder}/scoremaps_{method}/{image_id}.npy")
    group.add_argument("--num_overlays", type=int, default=8,
                       help="heatmap overlays written for the first N images")
    _bool_flag(group, "--fidelity_metrics", False,
               "also report Average Drop, Increase in Confidence, Insertion and Deletion")
    group.add_argument("--fidelity_protocol", default="authors",
                       choices=["authors", "softmax_head"],
                       help="confidences of the fidelity metrics: the authors' or head 1's "
                       "softmax (docs/fidelity.md)")


def _add_ignored(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("accepted for compatibility and ignored")
    ignored = "authors' flag without effect"
    group.add_argument("--wandb", default="off", help=ignored)
    group.add_argument("--project", default="", help=ignored)
    group.add_argument("--wandb_dir", default="", help=ignored)
    group.add_argument("--wandb_name", default=None, help=ignored)
    group.add_argument("--alpha", type=float, default=0.6, help=ignored)
    group.add_argument("--methods", default=None, help=ignored)
    _bool_flag(group, "--train_only", False, ignored)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of every flag, in groups."""
    parser = argparse.ArgumentParser(
        description="Dual-branch sigmoid CAM: train a classifier head and evaluate WSOL.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter, allow_abbrev=False)
    for add_group in (_add_general, _add_data, _add_model, _add_train, _add_eval, _add_ignored):
        add_group(parser)
    return parser


def _yaml_tokens(path: str, parser: argparse.ArgumentParser) -> list[str]:
    """Turn a YAML mapping of flag values into command-line tokens."""
    if not os.path.isfile(path):
        raise ConfigError(f"--config: file not found: {path}")
    with open(path, encoding="utf-8") as handle:
        try:
            values = yaml.safe_load(handle)
        except yaml.YAMLError as error:
            raise ConfigError(f"--config: {path} is not valid YAML: {error}") from None
    if values is None:
        return []
    if not isinstance(values, dict):
        raise ConfigError(f"--config: {path} must hold a mapping of flag names to values")
    flags = {option[2:]: option for action in parser._actions for option in action.option_strings
             if option.startswith("--")}
    tokens: list[str] = []
    for key, value in values.items():
        if key not in flags or key == "config":
            raise ConfigError(f"--config: unknown key {key!r} in {path}; keys are flag names "
                              f"without dashes, e.g. 'architecture'")
        if value is None:
            continue
        items = value if isinstance(value, list) else [value]
        tokens.append(flags[key])
        tokens.extend(str(item).lower() if isinstance(item, bool) else str(item) for item in items)
    return tokens


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    argv = list(argv) if argv is not None else None
    first, _ = parser.parse_known_args(argv)
    yaml_tokens = _yaml_tokens(first.config, parser) if first.config else []
    if yaml_tokens:
        try:
            parser.parse_args(yaml_tokens)
        except SystemExit:
            raise ConfigError(f"--config: invalid value in {first.config} (see the message "
                              "above)") from None
    return parser.parse_args(yaml_tokens + (argv if argv is not None else sys.argv[1:]))


def _derive(args: argparse.Namespace) -> dict[str, Any]:
    """Settings that follow from the flags (SPEC §8.1 derived settings, A18)."""
    values = vars(args).copy()
    values["family"] = family_for_method(args.method)
    values["num_classes"] = NUM_CLASSES[args.dataset_name]
    values["log_folder"] = os.path.join(args.root, args.experiment_name)
    values["iou_threshold_list"] = tuple(args.iou_threshold_list)
    values["multi_contour_eval"] = values["multi_iou_eval"] = args.box_v2_metric
    if not args.eval_only and args.model_structure == "vanilla" and args.unfreeze_layer == "none":
        values["unfreeze_layer"] = "all"
    if args.eval_only and args.epochs is None:
        values["epochs"] = -1
    return values


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _validate_common(cfg: Config) -> None:
    _check(cfg.architecture is not None, f"--architecture is required ({architecture_help()})")
    families = get_backbone(cfg.architecture).families
    _check(cfg.family in families, f"--method {cfg.method} needs the {cfg.family} family, which "
           f"{cfg.architecture} does not have (its families: {', '.join(families)}); use "
           f"{'a gradient method' if cfg.family == 'cam' else '--method cam'}")
    _check(cfg.batch_size >= 1, f"--batch_size must be >= 1, got {cfg.batch_size}")
    _check(cfg.workers >= 0, f"--workers must be >= 0, got {cfg.workers}")
    limit = get_dataset(cfg.dataset_name).val_sample_limit
    _check(cfg.num_val_sample_per_class >= 0,
           f"--num_val_sample_per_class must be >= 0, got {cfg.num_val_sample_per_class}")
    _check(limit is None or cfg.num_val_sample_per_class <= limit,
           f"--num_val_sample_per_class must be <= {limit} for {cfg.dataset_name}, "
           f"got {cfg.num_val_sample_per_class}")
    _check(cfg.init_weight, "--init_weight false is not supported: the initialisation of "
           "SPEC §3.8 is always applied")
    _validate_device(cfg.device, cfg.gpus)
    _check(cfg.amp != "fp16" or (cfg.device != "cpu" and torch.cuda.is_available()),
           "--amp fp16 needs a CUDA device; on the CPU use --amp bf16 or --amp off")


def _validate_device(device: str, gpus: str | None) -> None:
    valid = device in ("auto", "cpu", "cuda") or (device.startswith("cuda:")
                                                   and device[5:].isdigit())
    _check(valid, f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")
    _check(not (env_info().enabled and device.startswith("cuda:")),
           f"--device {device}: under torchrun every process uses cuda:LOCAL_RANK; pass "
           "--device auto or cuda (choose the GPUs with CUDA_VISIBLE_DEVICES)")
    _check(device in ("auto", "cpu") or torch.cuda.is_available(),
           f"--device {device} was requested but CUDA is not available")
    if gpus is not None:
        ids = [item.strip() for item in gpus.split(",") if item.strip()]
        _check(bool(ids) and all(item.isdigit() for item in ids),
               f"--gpus must be a comma-separated list of GPU ids, got {gpus!r}")


def _validate_train(cfg: Config) -> None:
    _check(cfg.epochs is not None and cfg.epochs >= 0,
           f"--epochs (alias --epoch) must be given and >= 0 for training, got {cfg.epochs}")
    _check(cfg.lr > 0, f"--lr must be > 0, got {cfg.lr}")
    _check(cfg.checkpoint_interval >= 1,
           f"--checkpoint_interval must be >= 1, got {cfg.checkpoint_interval}")
    _check(cfg.lr_decay_frequency >= 1,
           f"--lr_decay_frequency must be >= 1, got {cfg.lr_decay_frequency}")
    _check(1 <= cfg.crop_size <= cfg.resize_size,
           f"--crop_size ({cfg.crop_size}) must lie in [1, --resize_size ({cfg.resize_size})]")
    _check(cfg.unfreeze_layer != "none", "--unfreeze_layer none would freeze every parameter; "
           "pass --unfreeze_layer branch2 (or the head name, e.g. fc2) or all")
    accepted = _unfreeze_choices(cfg)
    _check(cfg.unfreeze_layer in accepted,
           f"--unfreeze_layer {cfg.unfreeze_layer!r} is not valid for {cfg.model_structure} "
           f"{cfg.architecture} of the {cfg.family} family (--method {cfg.method}); accepted: "
           f"{', '.join(accepted)}")
    if cfg.model_structure == "b2":
        _check(cfg.unfreeze_layer == "all" or cfg.ft_ckpt is not None or cfg.resume is not None,
               "b2 training of the sigmoid branch needs the trained backbone: pass --ft_ckpt "
               "(the vanilla last_checkpoint.pth.tar) or --resume")
    _check(not (cfg.resume and cfg.override_cache),
           "--resume continues an experiment and --override_cache deletes it; give only one")
    _check(cfg.branch_init == "random" or cfg.model_structure == "b2",
           "--branch_init clone needs --model_structure b2")
    _validate_starting_weights(cfg)
    folder = split_folder(cfg.metadata_root, cfg.dataset_name, "train")
    train_root = os.path.join(cfg.data_root, cfg.dataset_name, "train")
    _check(cfg.epochs == 0 or os.path.isdir(folder), f"no training metadata: folder {folder} not "
           "found (check --metadata_root and --dataset_name)"
           + missing_split_hint(cfg.dataset_name, "train", folder, train_root))


def _validate_starting_weights(cfg: Config) -> None:
    """The files training starts from exist (checked before the experiment folder is made)."""
    for flag, path in (("--ft_ckpt", cfg.ft_ckpt), ("--resume", cfg.resume)):
        _check(path in (None, "auto") or os.path.isfile(path), f"{flag}: file not found: {path}")
    if cfg.pretrained and cfg.ft_ckpt is None and cfg.resume is None:
        files = get_backbone(cfg.architecture).torchvision_files
        _check(bool(files), f"--pretrained true: {cfg.architecture} has no ImageNet weights; "
               "train it from scratch with --pretrained false, or start from --ft_ckpt")
        try:
            torchvision_weights_path(cfg.architecture, cfg.pretrained_path)
        except FileNotFoundError:
            where = cfg.pretrained_path or os.path.join(torch.hub.get_dir(), "checkpoints")
            raise ConfigError(
                f"--pretrained true: torchvision's ImageNet weights for {cfg.architecture} were "
                f"not found in {where} (they are never downloaded). Put {files[0]} there, pass "
                "the file or its folder with --pretrained_path, or train from scratch with "
                "--pretrained false") from None


def _unfreeze_choices(cfg: Config) -> tuple[str, ...]:
    """The `--unfreeze_layer` values of the configured model, from its backbone's declaration."""
    model_class = get_backbone(cfg.architecture).models[cfg.family]
    return unfreeze_names(model_class.head_names, cfg.model_structure == "b2")


def _validate_eval(cfg: Config) -> None:
    _check(cfg.crop_size == EVAL_FRAME, f"evaluation runs in the fixed {EVAL_FRAME}x{EVAL_FRAME} "
           f"frame of the ground truth; --crop_size must be {EVAL_FRAME}, got {cfg.crop_size}")
    _check(cfg.resume is None, "--resume continues training; it cannot be used with --eval_only")
    _check(50 in cfg.iou_threshold_list, "--iou_threshold_list must contain 50 (GT-known and "
           f"Top-1 Loc use IoU 50), got {list(cfg.iou_threshold_list)}")
    _check(all(0 < value <= 100 for value in cfg.iou_threshold_list),
           f"--iou_threshold_list values must lie in (0, 100], got {list(cfg.iou_threshold_list)}")
    _check(0 < cfg.cam_curve_interval <= 1,
           f"--cam_curve_interval must lie in (0, 1], got {cfg.cam_curve_interval}")
    thresholds = threshold_list(cfg.cam_curve_interval)
    _check(cfg.loc_threshold in thresholds, f"--loc_threshold {cfg.loc_threshold} is not one of "
           f"the thresholds of --cam_curve_interval {cfg.cam_curve_interval} "
           f"(round(j * interval, 3))")
    _check(cfg.max_images is None or cfg.max_images >= 1,
           f"--max_images must be >= 1, got {cfg.max_images}")
    _check(cfg.num_overlays >= 0, f"--num_overlays must be >= 0, got {cfg.num_overlays}")
    folder = split_folder(cfg.metadata_root, cfg.dataset_name, cfg.split)
    _check(os.path.isdir(folder), f"no metadata for --split {cfg.split}: folder {folder} not "
           "found (CARS has no val split)")


def validate(cfg: Config) -> None:
    """Check every cross-flag rule; raise `ConfigError` naming the flags and what is expected.

    Rules: SPEC D9 (unfreeze names per model), D15 (224 evaluation frame), D17 (required
    architecture, epochs >= 0 for training), D21 (IoU 50 and loc_threshold present), §1.4
    (val samples per class), A18 (vanilla trains everything), b2 needs a backbone checkpoint.
    """
    _validate_common(cfg)
    if cfg.eval_only:
        _validate_eval(cfg)
    else:
        _validate_train(cfg)


def get_config(argv: Sequence[str] | None = None) -> Config:
    """Parse, derive and validate the configuration.

    Args:
        argv: command-line tokens without the program name; None reads `sys.argv`.

    Raises:
        ConfigError: a rule of `validate` is broken or the YAML file is invalid.
        SystemExit: argparse rejected a flag (unknown flag, wrong type or choice).
    """
    cfg = Config(**_derive(_parse(argv)))
    validate(cfg)
    return cfg


def log_ignored_flags(cfg: Config) -> None:
    """Log the authors' flags that this implementation accepts but does not use."""
    defaults = build_parser().parse_args([])
    changed = [name for name in IGNORED_FLAGS if getattr(cfg, name) != getattr(defaults, name)]
    if changed:
        logger.info("ignored flags (accepted for compatibility): %s",
                    ", ".join(f"--{name}" for name in changed))


def write_config(cfg: Config, path: str) -> None:
    """Write the configuration as JSON, atomically."""
    write_json_atomic(path, cfg.to_dict(), indent=2, sort_keys=True)
