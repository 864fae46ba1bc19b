"""Evaluation: one pass over a split gives accuracy of both heads, heatmaps and WSOL metrics.

Per batch, the CAM method runs one forward pass (plus one backward pass for the gradient
methods) and returns the logits of both heads with the raw maps (SPEC D6, D16): head-1 argmax
gives Top-1 Cls and the "correct" flag of Top-1 Loc, the maps explain the ground-truth class
(SPEC §6) and go through the evaluator of `wsol.metrics.evaluation`. Outputs in `{log_folder}`, with
`{tag}` = the method, plus `_val` for the val split:

* `results_{tag}.json` (metrics, the SPEC §8.4 report, settings, curves) and `results_{tag}.md`;
* `eval_{tag}.log`;
* `scoremaps_{tag}/{image_id}.npy` and `scoremaps_{tag}/pred_correct.csv` (`--save_scoremaps`);
* `overlays_{tag}/{image_id}.png` for the first `--num_overlays` images.

Existing results of the same tag are never overwritten without `--override_cache`.

Under `torchrun` the split is sharded without padding (image `i` goes to process
`i % world_size`); every process writes the score maps and overlays of its own images, the
evaluator counters, classification counts and fidelity sums are added up over all processes, and
rank 0 writes the results, which equal those of a single process (docs/scaling.md).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from cam import CAMMethod, get_method, postprocess_maps_checked
from config import Config, PipelineError, log_ignored_flags
from data_loaders import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ShardSampler,
    WSOLDataLoader,
    WSOLDataset,
    get_data_loader,
)
from wsol.data.masks import MASK_FOREGROUND
from wsol.data.metadata import dataset_folder
from wsol.engine import distributed
from wsol.engine.files import write_json_atomic, write_text_atomic
from wsol.engine.runtime import autocast, progress, resolve_device, seed_everything, setup_logging
from wsol.metrics.boxes import boxes_at_thresholds, quantize
from wsol.metrics.evaluation import BoxEvaluator, MaskEvaluator, build_evaluator
from wsol.metrics.fidelity import FidelityMeter
from wsol.models.base import DualBranchModel
from wsol.models.checkpoints import CheckpointMismatchError, model_from_checkpoint
from wsol.report.overlays import (
    GT_COLOUR,
    PRED_COLOUR,
    blend_heatmap,
    denormalize,
    draw_boxes,
    draw_outline,
)
from wsol.report.tables import format_value, results_markdown

__all__ = ["EvalPaths", "checkpoint_to_evaluate", "evaluate", "eval_paths"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalPaths:
    """Files and folders an evaluation writes."""

    results_json: str
    results_md: str
    log: str
    scoremaps: str
    overlays: str


def eval_paths(cfg: Config) -> EvalPaths:
    """Output paths of an evaluation of `cfg` (tag = method, plus `_val` for the val split)."""
    tag = cfg.method if cfg.split == "test" else f"{cfg.method}_{cfg.split}"
    join = os.path.join
    return EvalPaths(join(cfg.log_folder, f"results_{tag}.json"),
                     join(cfg.log_folder, f"results_{tag}.md"),
                     join(cfg.log_folder, f"eval_{tag}.log"),
                     join(cfg.log_folder, f"scoremaps_{tag}"),
                     join(cfg.log_folder, f"overlays_{tag}"))


def _claim_outputs(paths: EvalPaths, override: bool) -> None:
    """Refuse to overwrite earlier results; otherwise clear score maps and overlays left over.

    Every process checks; rank 0 clears while the others wait.
    """
    if os.path.exists(paths.results_json) and not override:
        raise PipelineError(f"{paths.results_json} already exists; pass --override_cache true "
                            "to replace the results of this method and split")
    if distributed.is_main_process():
        for folder in (paths.scoremaps, paths.overlays):
            shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(os.path.dirname(paths.results_json), exist_ok=True)
    distributed.barrier()


def checkpoint_to_evaluate(cfg: Config) -> str:
    """`{log_folder}/{eval_checkpoint_type}_checkpoint.pth.tar`, else `--ft_ckpt`.

    Raises:
        PipelineError: neither file exists.
    """
    own = os.path.join(cfg.log_folder, f"{cfg.eval_checkpoint_type}_checkpoint.pth.tar")
    if os.path.isfile(own):
        return own
    if cfg.ft_ckpt is not None and os.path.isfile(cfg.ft_ckpt):
        return cfg.ft_ckpt
    tried = own if cfg.ft_ckpt is None else f"{own} and --ft_ckpt {cfg.ft_ckpt}"
    raise PipelineError(f"no checkpoint to evaluate: {tried} not found (check --root, "
                        "--experiment_name and --eval_checkpoint_type)")


def _load_model(cfg: Config, path: str) -> DualBranchModel:
    """Build the configured model and load `path` strictly."""
    try:
        return model_from_checkpoint(path, architecture=cfg.architecture, family=cfg.family,
                                     num_classes=cfg.num_classes,
                                     model_structure=cfg.model_structure,
                                     large_feature_map=cfg.large_feature_map)
    except CheckpointMismatchError as error:
        raise PipelineError(f"{path} does not fit --architecture {cfg.architecture} "
                            f"--method {cfg.method} ({cfg.family} family) --model_structure "
                            f"{cfg.model_structure} --dataset_name {cfg.dataset_name}: "
                            f"{error}") from None


def _eval_loader(cfg: Config) -> DataLoader:
    """Loader of this process's shard of the split (the first `--max_images` images)."""
    loader = get_data_loader(
        cfg.split, data_root=cfg.data_root, metadata_root=cfg.metadata_root,
        dataset_name=cfg.dataset_name, batch_size=cfg.batch_size, workers=cfg.workers,
        crop_size=cfg.crop_size, num_val_sample_per_class=cfg.num_val_sample_per_class,
        skip_unreadable=cfg.skip_unreadable)
    dataset = loader.dataset
    if cfg.max_images is not None and cfg.max_images < len(dataset):
        dataset = Subset(dataset, range(cfg.max_images))
    info = distributed.get_info()
    return WSOLDataLoader(dataset, batch_size=cfg.batch_size,
                          sampler=ShardSampler(len(dataset), info.rank, info.world_size),
                          num_workers=cfg.workers, pin_memory=loader.pin_memory,
                          collate_fn=loader.collate_fn)


def _image_ids(dataset: WSOLDataset | Subset) -> list[str]:
    """Image ids of the evaluated images, in split order (all processes together)."""
    if isinstance(dataset, Subset):
        return [dataset.dataset.metadata.image_ids[index] for index in dataset.indices]
    return list(dataset.metadata.image_ids)


def _build_evaluator(cfg: Config, loader: DataLoader) -> BoxEvaluator | MaskEvaluator:
    dataset = loader.dataset.dataset if isinstance(loader.dataset, Subset) else loader.dataset
    return build_evaluator(dataset.metadata, cam_curve_interval=cfg.cam_curve_interval,
                           iou_threshold_list=cfg.iou_threshold_list,
                           box_v2_metric=cfg.box_v2_metric, loc_threshold=cfg.loc_threshold,
                           mask_root=dataset_folder(cfg.mask_root, cfg.dataset_name),
                           pxap_histogram_dtype=cfg.pxap_histogram_dtype)


def _clamp_setting(value: str) -> bool | None:
    return {"auto": None, "true": True, "false": False}[value]


def _to_numpy(maps: np.ndarray | torch.Tensor) -> np.ndarray:
    return maps.detach().cpu().numpy() if isinstance(maps, torch.Tensor) else maps


def _save_scoremaps(folder: str, scoremaps: np.ndarray, image_ids: list[str]) -> None:
    """Write `{folder}/{image_id}.npy`."""
    for scoremap, image_id in zip(scoremaps, image_ids):
        path = os.path.join(folder, f"{image_id}.npy")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        np.save(path, scoremap)


def _write_pred_correct(folder: str, image_ids: list[str], correct: dict[str, bool]) -> None:
    """Write `{folder}/pred_correct.csv`: `image_id,0|1` in split order."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "pred_correct.csv"), "w", encoding="utf-8") as handle:
        handle.writelines(f"{image_id},{int(correct[image_id])}\n" for image_id in image_ids)


def _largest_box(scoremap: np.ndarray, threshold: float) -> np.ndarray:
    """Largest-contour box at `threshold`, the box GT-known/Top-1 Loc score (SPEC §7.6)."""
    found = boxes_at_thresholds(quantize(scoremap), np.asarray([threshold]))
    return found.boxes[found.largest[found.level[0]]]


def _draw_overlay(image: torch.Tensor, scoremap: np.ndarray, image_id: str,
                  evaluator: BoxEvaluator | MaskEvaluator, cfg: Config) -> np.ndarray:
    """Image blended with the heatmap, ground truth in green, predicted box in red."""
    canvas = blend_heatmap(denormalize(image, IMAGENET_MEAN, IMAGENET_STD), scoremap)
    if isinstance(evaluator, MaskEvaluator):
        return draw_outline(canvas, evaluator.gt_mask(image_id) == MASK_FOREGROUND, GT_COLOUR)
    draw_boxes(canvas, evaluator.gt_boxes(image_id), GT_COLOUR)
    return draw_boxes(canvas, [_largest_box(scoremap, cfg.loc_threshold)], PRED_COLOUR)


def _write_overlays(folder: str, images: torch.Tensor, scoremaps: np.ndarray,
                    image_ids: list[str], wanted: frozenset[str],
                    evaluator: BoxEvaluator | MaskEvaluator, cfg: Config) -> None:
    """Overlays of the batch's images that are in `wanted` (the first `--num_overlays`)."""
    for image, scoremap, image_id in zip(images, scoremaps, image_ids):
        if image_id not in wanted:
            continue
        path = os.path.join(folder, f"{image_id}.png")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not cv2.imwrite(path, _draw_overlay(image, scoremap, image_id, evaluator, cfg)):
            raise OSError(f"could not write overlay {path}")


@dataclass
class _Counts:
    """Running totals of one evaluation pass (of this process's shard)."""

    images: int = 0
    correct: int = 0
    correct2: int = 0
    has_branch2: bool = False
    pred_correct: dict[str, bool] = field(default_factory=dict)
    nonfinite: int = 0
    skipped: int = 0


def _explain(explainer: CAMMethod, images: torch.Tensor, targets: torch.Tensor,
             device: torch.device, cfg: Config
             ) -> tuple[dict[str, torch.Tensor], np.ndarray, int]:
    """Outputs (float32), post-processed score maps of `targets` and the number of maps that
    held NaN or Inf (set to zero, SPEC §6.4), under `--amp`."""
    with autocast(device, cfg.amp):
        result = explainer.explain(images, targets)
    outputs = {name: value.float() for name, value in result.outputs.items()}
    processed = postprocess_maps_checked(result.maps.float(), cfg.method, cfg.postprocess)
    return outputs, _to_numpy(processed.scoremaps), int(processed.nonfinite.sum())


def _fidelity_update(meter: FidelityMeter, explainer: CAMMethod, model: DualBranchModel,
                     images: torch.Tensor, labels: torch.Tensor,
                     outputs: dict[str, torch.Tensor], scoremaps: np.ndarray,
                     device: torch.device, cfg: Config) -> None:
    """Score the heatmaps of the predicted class (the authors' fidelity protocol)."""
    predicted = outputs["logits"].argmax(dim=1)
    if not bool((predicted == labels).all()):
        scoremaps = _explain(explainer, images, predicted, device, cfg)[1]
    meter.update(model, images, scoremaps, predicted, outputs=outputs)


def _run_pass(model: DualBranchModel, loader: DataLoader, evaluator: BoxEvaluator | MaskEvaluator,
              meter: FidelityMeter | None, device: torch.device, cfg: Config,
              paths: EvalPaths) -> _Counts:
    """One pass: logits, heatmaps and evaluator updates from a single forward(+backward)."""
    counts = _Counts(has_branch2=model.has_branch2)
    overlay_ids = frozenset(_image_ids(loader.dataset)[:cfg.num_overlays])
    method = get_method(cfg.method)(model, clamp_negative=_clamp_setting(cfg.clamp_negative))
    with method as explainer:
        for images, labels, batch_ids in progress(loader, f"eval {cfg.method}"):
            image_ids = list(batch_ids)
            if not image_ids:
                continue
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            outputs, scoremaps, nonfinite = _explain(explainer, images, labels, device, cfg)
            counts.nonfinite += nonfinite
            correct = (outputs["logits"].argmax(dim=1) == labels).cpu().numpy()
            evaluator.accumulate_batch(scoremaps, image_ids, correct)
            if counts.has_branch2:
                counts.correct2 += int((outputs["logits2"].argmax(dim=1) == labels).sum())
            if cfg.save_scoremaps:
                _save_scoremaps(paths.scoremaps, scoremaps, image_ids)
            _write_overlays(paths.overlays, images, scoremaps, image_ids, overlay_ids,
                            evaluator, cfg)
            if meter is not None:
                _fidelity_update(meter, explainer, model, images, labels, outputs, scoremaps,
                                 device, cfg)
            counts.images += len(image_ids)
            counts.correct += int(correct.sum())
            counts.pred_correct.update(zip(image_ids, correct.tolist()))
    dataset = loader.dataset
    counts.skipped = (dataset.dataset if isinstance(dataset, Subset) else dataset).num_skipped
    return counts


def _combine(counts: _Counts, evaluator: BoxEvaluator | MaskEvaluator,
             meter: FidelityMeter | None) -> _Counts:
    """Add the counts, evaluator counters and fidelity sums of every process (in place)."""
    evaluator.load_state_dict(distributed.all_reduce_state(evaluator.state_dict()))
    if meter is not None:
        meter.load_state_dict(distributed.all_reduce_state(meter.state_dict()))
    totals = distributed.all_reduce_state(
        {"images": counts.images, "correct": counts.correct, "correct2": counts.correct2,
         "nonfinite": counts.nonfinite, "skipped": counts.skipped})
    pred_correct: dict[str, bool] = {}
    for part in distributed.all_gather_objects(counts.pred_correct):
        pred_correct.update(part)
    return _Counts(totals["images"], totals["correct"], totals["correct2"], counts.has_branch2,
                   pred_correct, totals["nonfinite"], totals["skipped"])


def _metrics(cfg: Config, counts: _Counts, computed: dict[str, Any]) -> dict[str, Any]:
    """Headline metrics in percent (SPEC §7.9) plus extras."""
    metrics: dict[str, Any] = {"num_images": counts.images,
                               "num_nonfinite_heatmaps": counts.nonfinite,
                               "num_skipped_images": counts.skipped,
                               "top1_cls": 100.0 * counts.correct / counts.images}
    if counts.nonfinite:
        logger.warning("%d heatmaps held NaN or Inf and were evaluated as all-zero maps",
                       counts.nonfinite)
    if counts.has_branch2:
        metrics["top1_cls_branch2"] = 100.0 * counts.correct2 / counts.images
    if "PxAP" in computed:
        metrics["PxAP"] = computed["PxAP"]
        return metrics
    first = {"gt_loc": computed["gt_loc"], "top1_loc": computed["top1_loc"]}
    any_box = {"gt_loc": computed["gt_loc_any_box"], "top1_loc": computed["top1_loc_any_box"]}
    metrics.update(any_box if cfg.loc_gt_boxes == "any" else first)
    if not cfg.box_v2_metric:
        metrics["maxboxacc"] = computed["maxboxacc"]
    metrics["maxboxacc_v2"] = computed["maxboxacc_v2"]  # MaxBoxAcc(50) without V2 (SPEC §7.5)
    for delta in cfg.iou_threshold_list:
        metrics[f"maxboxacc_IOU_{delta}"] = computed[f"maxboxacc_IOU_{delta}"]
    for name in ("gt_loc", "top1_loc"):
        metrics[f"{name}_first_box"] = first[name]
        metrics[f"{name}_any_box"] = any_box[name]
    return metrics


def _report(cfg: Config, metrics: dict[str, Any]) -> dict[str, Any]:
    """The SPEC §8.4 evaluation report (one evaluation: best equals current)."""
    names = ("PxAP",) if "PxAP" in metrics else (
        "loss", "top1_cls", "maxboxacc_v2", "top1_loc", "gt_loc",
        *(f"maxboxacc_IOU_{delta}" for delta in cfg.iou_threshold_list))
    report: dict[str, Any] = {"summary": True, "step": cfg.epochs}
    for name in names:
        value = metrics.get(name)
        report[f"{cfg.split}/{name}"] = value
        report[f"{cfg.split}/{name}_best"] = value
    return report


def _settings(cfg: Config, checkpoint: str) -> dict[str, Any]:
    keys = ("dataset_name", "split", "architecture", "family", "method", "model_structure",
            "large_feature_map", "clamp_negative", "postprocess", "loc_threshold",
            "loc_gt_boxes", "cam_curve_interval", "iou_threshold_list", "box_v2_metric",
            "pxap_histogram_dtype", "max_images", "amp", "seed", "experiment_name", "log_folder")
    return {"checkpoint": checkpoint, **{key: cfg.to_dict()[key] for key in keys}}


def _write_results(paths: EvalPaths, results: dict[str, Any]) -> None:
    write_json_atomic(paths.results_json, results)
    write_text_atomic(paths.results_md, results_markdown(results["metrics"], results["settings"]))


def evaluate(cfg: Config) -> dict[str, Any]:
    """Evaluate the configured checkpoint on `--split` and write the results.

    Returns:
        The results dict written to `results_{tag}.json`.

    Raises:
        PipelineError: results exist already, no checkpoint, or it does not fit the model.
    """
    device = resolve_device(cfg.device, cfg.gpus)
    info = distributed.init_distributed(device)
    paths = eval_paths(cfg)
    checkpoint = checkpoint_to_evaluate(cfg)
    _claim_outputs(paths, cfg.override_cache)
    setup_logging(paths.log, cfg.debug)
    log_ignored_flags(cfg)
    if cfg.ft_ckpt is not None and checkpoint != cfg.ft_ckpt:
        logger.info("evaluating %s; --ft_ckpt %s is not used", checkpoint, cfg.ft_ckpt)
    seed_everything(cfg.seed)
    model = _load_model(cfg, checkpoint).to(device).eval()
    loader = _eval_loader(cfg)
    evaluator = _build_evaluator(cfg, loader)
    meter = FidelityMeter(cfg.fidelity_protocol) if cfg.fidelity_metrics else None
    logger.info("evaluating %s with %s on %s/%s (%d images) on %s x %d process(es)", checkpoint,
                cfg.method, cfg.dataset_name, cfg.split, len(loader.dataset), device,
                info.world_size)
    started = time.perf_counter()
    counts = _combine(_run_pass(model, loader, evaluator, meter, device, cfg, paths),
                      evaluator, meter)
    seconds = float(distributed.all_reduce(torch.tensor(time.perf_counter() - started),
                                           op="max"))
    if cfg.save_scoremaps and distributed.is_main_process():
        _write_pred_correct(paths.scoremaps, _image_ids(loader.dataset), counts.pred_correct)
    computed = evaluator.compute()
    metrics = _metrics(cfg, counts, computed)
    if meter is not None:
        metrics.update({key: value for key, value in meter.compute().items()
                        if key != "num_images"})
    results = {"metrics": metrics, "report": _report(cfg, metrics),
               "settings": _settings(cfg, checkpoint), "curves": computed["curves"],
               "timing": {"seconds": round(seconds, 2),
                          "images_per_second": round(counts.images / seconds, 2),
                          "processes": info.world_size, "amp": cfg.amp}}
    if distributed.is_main_process():
        _write_results(paths, results)
    distributed.barrier()
    logger.info("results: %s", ", ".join(f"{name} {format_value(value)}"
                                         for name, value in metrics.items()))
    logger.info("wrote %s and %s", paths.results_json, paths.results_md)
    return results
