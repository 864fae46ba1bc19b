"""Training of vanilla backbones and of the sigmoid branch (SPEC §4, §5).

`run(cfg)` prepares the experiment folder, builds the model and its starting weights, freezes
what `--unfreeze_layer` says, then runs epochs of `train_one_epoch`. After every epoch it writes
a checkpoint (`{e}_checkpoint.pth.tar`, or `last_checkpoint.pth.tar` for the final epoch), a
pointer `latest_checkpoint.json` used by `--resume auto`, a JSON report (SPEC §8.4) and a row of
`train_metrics.jsonl`. Checkpoints hold the RNG states, so resuming after an epoch reproduces the
uninterrupted run exactly on the CPU. Under `torchrun` the model is wrapped in
DistributedDataParallel for the training step, each process reads its part of the data
(`DistributedSampler`), losses and accuracies are averaged over all processes and only rank 0
writes files. See docs/pipeline.md and docs/scaling.md.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import sys
import time
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from config import Config, PipelineError, log_ignored_flags, write_config
from data_loaders import get_data_loader
from wsol.data.metadata import dataset_folder
from wsol.engine import distributed
from wsol.engine.files import write_json_atomic
from wsol.engine.losses import DualBranchLoss
from wsol.engine.optim import adjust_learning_rate, build_optimizer
from wsol.engine.runtime import (
    autocast,
    progress,
    resolve_device,
    seed_everything,
    setup_logging,
    unwrap_model,
)
from wsol.models.base import DualBranchModel
from wsol.models.checkpoints import (
    CheckpointMismatchError,
    CheckpointReadError,
    load_finetune_checkpoint,
    load_model_state,
    load_torchvision_weights,
    load_training_checkpoint,
    save_checkpoint,
)
from wsol.models.freezing import apply_freezing, set_train_mode
from wsol.models.registry import build_model

__all__ = [
    "CHECKPOINT_FORMAT_VERSION",
    "LATEST_POINTER",
    "checkpoint_name",
    "completed_no_epoch",
    "run",
    "train_one_epoch",
]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT_VERSION = 1
LATEST_POINTER = "latest_checkpoint.json"
RESUME_MUST_MATCH = ("architecture", "family", "model_structure", "dataset_name",
                     "large_feature_map", "unfreeze_layer")
# what a run writes before its first epoch completes
FAILED_START_FILES = frozenset({"config.json", "train.log"})
# names of the two optimizer groups (wsol.engine.optim): base lr, lr x --lr_classifier_ratio
LR_GROUP_NAMES = ("backbone", "classifier")


def checkpoint_name(epoch: int, epochs: int) -> str:
    """`last_checkpoint.pth.tar` for the final epoch, else `{epoch}_checkpoint.pth.tar`."""
    return "last_checkpoint.pth.tar" if epoch == epochs else f"{epoch}_checkpoint.pth.tar"


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    numpy_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy_key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
        "numpy_pos": int(numpy_state["state"]["pos"]),
        "numpy_gauss": (int(numpy_state["has_gauss"]), float(numpy_state["gauss"])),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "loader": generator.get_state(),
    }


def _restore_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    has_gauss, gauss_value = state["numpy_gauss"]
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": state["numpy_key"].numpy().astype(np.uint32),
                                   "pos": state["numpy_pos"]},
                         "has_gauss": has_gauss, "gauss": gauss_value})
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator.set_state(state["loader"])


def completed_no_epoch(folder: str) -> bool:
    """True when `folder` holds only what a run writes before its first epoch completes
    (`config.json`, `train.log`): a failed start, which does not block a new run."""
    return set(os.listdir(folder)) <= FAILED_START_FILES


def _prepare_folder(cfg: Config) -> str:
    """Create the experiment folder; an existing one needs `--resume` or `--override_cache`.

    A failed start (`completed_no_epoch`) is reused as it is: its `train.log` keeps the record
    of the failure and the new run appends to it. Every process checks before rank 0 changes
    anything, so all of them fail alike.
    """
    folder = cfg.log_folder
    occupied = (os.path.isdir(folder) and not completed_no_epoch(folder)
                and not cfg.resume)
    if occupied and not cfg.override_cache:
        raise PipelineError(
            f"experiment folder {folder} already exists; pass --resume auto to continue it "
            "or --override_cache true to delete it and start again")
    distributed.barrier()
    if distributed.is_main_process():
        if occupied:
            shutil.rmtree(folder)
        os.makedirs(folder, exist_ok=True)
    distributed.barrier()
    return folder


def _resume_path(cfg: Config) -> str:
    """The checkpoint `--resume` names (`auto`: the experiment's latest, via the pointer)."""
    if cfg.resume != "auto":
        return cfg.resume
    pointer = os.path.join(cfg.log_folder, LATEST_POINTER)
    if not os.path.isfile(pointer):
        raise PipelineError(f"--resume auto: {pointer} not found; the experiment {cfg.log_folder} "
                            "has no completed epoch to resume from (no checkpoint saved yet); "
                            "run the command without --resume to start it")
    with open(pointer, encoding="utf-8") as handle:
        return os.path.join(cfg.log_folder, json.load(handle)["checkpoint"])


def _load_starting_weights(model: DualBranchModel, cfg: Config) -> None:
    """Fill a new model from `--ft_ckpt` (SPEC §3.10) or local torchvision weights (§3.9)."""
    try:
        if cfg.ft_ckpt is not None:
            load_finetune_checkpoint(model, cfg.ft_ckpt, unfreeze_layer=cfg.unfreeze_layer)
        elif cfg.pretrained:
            load_torchvision_weights(model, cfg.pretrained_path,
                                     keep_head=cfg.dataset_name == "ILSVRC")
    except CheckpointMismatchError as error:
        source = cfg.ft_ckpt or "the torchvision weights"
        raise PipelineError(f"{source} does not fit --architecture {cfg.architecture} "
                            f"--method {cfg.method} ({cfg.family} family) --model_structure "
                            f"{cfg.model_structure}: {error}") from None
    if cfg.ft_ckpt is None and not cfg.pretrained:
        logger.info("no --ft_ckpt and --pretrained false: training from the initialisation")


def build_training_model(cfg: Config, load_weights: bool = True) -> DualBranchModel:
    """Build the model of `cfg`, load its starting weights and freeze it (SPEC §3.8–3.11)."""
    model = build_model(cfg.architecture, cfg.family, cfg.num_classes,
                        model_structure=cfg.model_structure,
                        large_feature_map=cfg.large_feature_map, branch_init=cfg.branch_init)
    if load_weights:
        _load_starting_weights(model, cfg)
    trainable = apply_freezing(model, cfg.unfreeze_layer)
    logger.info("%s %s-family %s: %d of %d parameter tensors trainable (--unfreeze_layer %s)",
                cfg.architecture, cfg.family, cfg.model_structure, len(trainable),
                len(list(model.parameters())), cfg.unfreeze_layer)
    logger.debug("trainable parameters: %s", ", ".join(trainable))
    return model


def _train_loader(cfg: Config, generator: torch.Generator) -> DataLoader:
    """Shuffled train loader: `RandomSampler` for one process, `DistributedSampler` for many.

    Augmentation is seeded per image and epoch (`augment_seed`), so an image is augmented the
    same way whichever process loads it.
    """
    info = distributed.get_info()

    def sampler(dataset: Any) -> RandomSampler | DistributedSampler:
        if not info.enabled:
            return RandomSampler(dataset, generator=generator)
        return DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank,
                                  shuffle=True, seed=cfg.seed, drop_last=False)

    return get_data_loader(
        "train", data_root=cfg.data_root, metadata_root=cfg.metadata_root,
        dataset_name=cfg.dataset_name, batch_size=cfg.batch_size, workers=cfg.workers,
        resize_size=cfg.resize_size, crop_size=cfg.crop_size,
        proxy_training_set=cfg.proxy_training_set, sampler_factory=sampler,
        augment_seed=cfg.seed, skip_unreadable=cfg.skip_unreadable)


def _set_epoch(loader: DataLoader, epoch: int) -> None:
    """Select the epoch's shuffle (distributed sampler) and augmentation draws."""
    loader.dataset.set_epoch(epoch)
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)


def _gradient_scaler(device: torch.device, amp: str) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 training (bf16 and float32 need none)."""
    return torch.amp.GradScaler(device.type) if amp == "fp16" else None


def _step(loss: torch.Tensor, optimizer: torch.optim.Optimizer,
          scaler: torch.amp.GradScaler | None) -> None:
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
        return
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def _epoch_stats(sums: dict[str, float], has_branch2: bool, cfg: Config) -> dict[str, float]:
    """Averages over every process: sums and image counts are added up first."""
    names = list(sums)
    totals = distributed.all_reduce(torch.tensor([sums[name] for name in names],
                                                 dtype=torch.float64))
    total = dict(zip(names, totals.tolist()))
    seen = int(total["seen"])
    if seen == 0:
        raise PipelineError(f"the {cfg.dataset_name} train split has no images")
    stats = {"loss": total["loss"] / seen, "loss_ce": total["loss_ce"] / seen,
             "accuracy": 100.0 * total["correct"] / seen, "num_images": seen}
    if has_branch2:
        stats["loss_bce"] = total["loss_bce"] / seen
        stats["accuracy2"] = 100.0 * total["correct2"] / seen
    return stats


def train_one_epoch(model: nn.Module, criterion: DualBranchLoss,
                    optimizer: torch.optim.Optimizer, loader: DataLoader, device: torch.device,
                    epoch: int, cfg: Config,
                    scaler: torch.amp.GradScaler | None = None) -> dict[str, float]:
    """Train one epoch (SPEC §5.3) and return its averages over every process.

    `model` may be wrapped in DistributedDataParallel; `scaler` scales fp16 gradients.

    Raises:
        FloatingPointError: the loss became NaN or infinite (names the epoch and step).
    """
    set_train_mode(model, cfg.unfreeze_layer, cfg.bn_mode)
    has_branch2 = unwrap_model(model).has_branch2
    head1_trained = _head1_trained(model)
    log_every = 0 if sys.stderr.isatty() else cfg.log_every
    sums = {"loss": 0.0, "loss_ce": 0.0, "loss_bce": 0.0, "correct": 0.0, "correct2": 0.0,
            "seen": 0.0}
    started = time.perf_counter()
    for step, (images, labels, _) in enumerate(progress(loader, f"epoch {epoch}"), start=1):
        if len(images) == 0:
            continue
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        with autocast(device, cfg.amp):
            outputs = model(images)
            loss = criterion(outputs, labels)
        value = loss.total.item()
        if not math.isfinite(value):
            raise FloatingPointError(
                f"loss is {value} at epoch {epoch}, step {step} of {len(loader)}; training "
                "stopped (lower --lr, or check the data and the starting checkpoint)")
        _step(loss.total, optimizer, scaler)
        batch = labels.shape[0]
        sums["seen"] += batch
        sums["loss"] += value * batch
        sums["loss_ce"] += loss.ce.item() * batch
        sums["correct"] += int((outputs["logits"].argmax(dim=1) == labels).sum())
        if has_branch2:
            sums["loss_bce"] += loss.bce.item() * batch
            sums["correct2"] += int((outputs["logits2"].argmax(dim=1) == labels).sum())
        if log_every and step % log_every == 0:
            _log_progress(epoch, step, len(loader), sums, has_branch2, head1_trained,
                          time.perf_counter() - started)
    return _epoch_stats(sums, has_branch2, cfg)


def _head1_trained(model: nn.Module) -> bool:
    """Whether the softmax head (head 1) receives gradients (not frozen by --unfreeze_layer)."""
    return any(parameter.requires_grad for parameter in unwrap_model(model).head(1).parameters())


def _loss_text(losses: dict[str, float], has_branch2: bool, head1_trained: bool) -> str:
    """The loss of what is trained, labelled: with a frozen softmax head the sigmoid branch's
    BCE is the training loss and the head's cross-entropy is shown apart (it moves with the
    batch statistics of the backbone, not with training)."""
    if not has_branch2:
        return f"loss {losses['loss']:.4f} (softmax CE)"
    if head1_trained:
        return (f"loss {losses['loss']:.4f} (softmax CE {losses['loss_ce']:.4f} + sigmoid BCE "
                f"{losses['loss_bce']:.4f})")
    return (f"branch loss {losses['loss_bce']:.4f} (sigmoid BCE), frozen softmax head's CE "
            f"{losses['loss_ce']:.4f}")


def _log_progress(epoch: int, step: int, steps: int, sums: dict[str, float], has_branch2: bool,
                  head1_trained: bool, seconds: float) -> None:
    """One line of progress inside an epoch: step, running losses of this process, speed."""
    seen = sums["seen"]
    losses = {name: sums[name] / seen for name in ("loss", "loss_ce", "loss_bce")}
    logger.info("epoch %d step %d/%d (%d%%): %s, %.1f images/s", epoch, step, steps,
                100 * step // steps, _loss_text(losses, has_branch2, head1_trained),
                seen / max(seconds, 1e-9))


def _lr_text(lrs: list[float]) -> str:
    """`lr backbone 0.003, lr classifier 0.03`: the rate of every optimizer group, named."""
    names = LR_GROUP_NAMES if len(lrs) == len(LR_GROUP_NAMES) else [
        f"group {index}" for index in range(len(lrs))]
    return ", ".join(f"lr {name} {lr:.3g}" for name, lr in zip(names, lrs))


def _save(folder: str, model: DualBranchModel, optimizer: torch.optim.Optimizer, epoch: int,
          cfg: Config, generator: torch.Generator) -> str:
    """Write the epoch's checkpoint atomically, then the `latest_checkpoint.json` pointer.

    Every process calls it: the RNG states of all processes are gathered, rank 0 writes, and the
    others wait at a barrier until the files are complete.
    """
    name = checkpoint_name(epoch, cfg.epochs)
    path = os.path.join(folder, name)
    rng_by_rank = distributed.all_gather_objects(_rng_state(generator))
    if distributed.is_main_process():
        _write_checkpoint(path, model, optimizer, epoch, cfg, rng_by_rank)
    distributed.barrier()
    return path


def _write_checkpoint(path: str, model: DualBranchModel, optimizer: torch.optim.Optimizer,
                      epoch: int, cfg: Config, rng_by_rank: list[dict[str, Any]]) -> None:
    state = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "architecture": cfg.architecture,
        "family": cfg.family,
        "model_structure": cfg.model_structure,
        "num_classes": cfg.num_classes,
        "large_feature_map": cfg.large_feature_map,
        "epoch": epoch,
        "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "config": cfg.to_dict(),
        "rng": rng_by_rank[0],
    }
    if len(rng_by_rank) > 1:
        state["rng_by_rank"] = rng_by_rank
    save_checkpoint(path, state)
    folder, name = os.path.split(path)
    write_json_atomic(os.path.join(folder, LATEST_POINTER), {"checkpoint": name, "epoch": epoch},
                      indent=2)
    logger.info("saved %s (epoch %d)", path, epoch)


def _report_epoch(folder: str, epoch: int, lrs: list[float], stats: dict[str, float],
                  seconds: float, head1_trained: bool) -> None:
    """Write the SPEC §8.4 training report and append a row to `train_metrics.jsonl`."""
    report = {"summary": True, "step": epoch, "train/classification": stats["accuracy"],
              "train/loss": stats["loss"]}
    os.makedirs(os.path.join(folder, "reports_train"), exist_ok=True)
    write_json_atomic(os.path.join(folder, "reports_train", f"{epoch}.json"), report, indent=2)
    row = {"epoch": epoch, "lr": lrs, **stats, "seconds": round(seconds, 3)}
    with open(os.path.join(folder, "train_metrics.jsonl"), "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
    has_branch2 = "loss_bce" in stats
    accuracy2 = f", head-2 acc {stats['accuracy2']:.2f}%" if has_branch2 else ""
    logger.info("epoch %d: %s; head-1 acc %.2f%%%s; %s; %.1fs", epoch,
                _loss_text(stats, has_branch2, head1_trained), stats["accuracy"], accuracy2,
                _lr_text(lrs), seconds)


def _drop_metric_rows(folder: str, start_epoch: int) -> None:
    """Remove `train_metrics.jsonl` rows of epochs that a resumed run trains again."""
    path = os.path.join(folder, "train_metrics.jsonl")
    if not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as handle:
        rows = [line for line in handle if _complete_row_before(line, start_epoch)]
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(rows)


def _complete_row_before(line: str, epoch: int) -> bool:
    """A whole JSON row (a run killed mid-write leaves a partial last line) of an earlier epoch."""
    try:
        return json.loads(line)["epoch"] < epoch
    except (json.JSONDecodeError, KeyError):
        return False


def _resume(cfg: Config, path: str, model: DualBranchModel, optimizer: torch.optim.Optimizer,
            generator: torch.Generator) -> int:
    """Restore model, optimizer and RNG states from `path`; return the first epoch to run."""
    try:
        checkpoint = load_training_checkpoint(path)
    except CheckpointReadError:
        raise
    except ValueError as error:
        raise PipelineError(f"--resume: {error}") from None
    if checkpoint.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise PipelineError(f"--resume: {path} is not a training checkpoint of this project "
                            f"(format_version {checkpoint.get('format_version')!r}, expected "
                            f"{CHECKPOINT_FORMAT_VERSION})")
    saved = checkpoint["config"]
    differing = [f"--{key} {saved.get(key)!r} (checkpoint) vs {getattr(cfg, key)!r}"
                 for key in RESUME_MUST_MATCH if saved.get(key) != getattr(cfg, key)]
    if differing:
        raise PipelineError(f"--resume: {path} was trained with other settings: "
                            + "; ".join(differing))
    try:
        load_model_state(model, checkpoint, strict=True)
    except CheckpointMismatchError as error:
        raise PipelineError(f"--resume: {path} does not fit the model: {error}") from None
    optimizer.load_state_dict(checkpoint["optimizer"])
    _restore_rng_state(_own_rng_state(checkpoint), generator)
    logger.info("resumed from %s (epoch %d)", path, checkpoint["epoch"])
    return int(checkpoint["epoch"]) + 1


def _own_rng_state(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """This process's saved RNG states; rank 0's when the checkpoint has none for it."""
    states = checkpoint.get("rng_by_rank", [checkpoint["rng"]])
    info = distributed.get_info()
    if len(states) == info.world_size:
        return states[info.rank]
    logger.warning("the checkpoint holds RNG states of %d process(es), this run has %d; every "
                   "process continues from rank 0's states", len(states), info.world_size)
    return states[0]


def _open_experiment(cfg: Config) -> str:
    """Create the experiment folder, start logging to it and write `config.json` (rank 0)."""
    failed_start = (not cfg.resume and os.path.isdir(cfg.log_folder)
                    and bool(os.listdir(cfg.log_folder)) and completed_no_epoch(cfg.log_folder))
    folder = _prepare_folder(cfg)
    setup_logging(os.path.join(folder, "train.log"), cfg.debug)
    logger.info("[command] %s", " ".join(sys.argv))
    if failed_start:
        logger.info("%s holds a run that completed no epoch; starting again in it", folder)
    if cfg.resume and cfg.ft_ckpt:
        logger.info("--ft_ckpt %s is not loaded: --resume restores the whole model", cfg.ft_ckpt)
    log_ignored_flags(cfg)
    if distributed.is_main_process():
        write_config(cfg, os.path.join(folder, "config.json"))
    return folder


def _wrap(model: DualBranchModel, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `model` for the training step (unchanged for 1 process).

    Only parameters with `requires_grad` are synchronised, so a frozen backbone with a trained
    branch needs no `find_unused_parameters`: every trainable parameter takes part in the loss.
    """
    if not distributed.get_info().enabled:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def _train_epochs(cfg: Config, folder: str, model: DualBranchModel,
                  optimizer: torch.optim.Optimizer, base_lrs: list[float],
                  generator: torch.Generator, device: torch.device, start_epoch: int) -> None:
    """Epochs `start_epoch`…`--epochs`: schedule, one epoch, checkpoint, report."""
    model_without_ddp = model
    model = _wrap(model_without_ddp, device)
    criterion = DualBranchLoss(cfg.num_classes)
    loader = _train_loader(cfg, generator)
    scaler = _gradient_scaler(device, cfg.amp)
    info = distributed.get_info()
    head1_trained = _head1_trained(model_without_ddp)
    logger.info("training epochs %d-%d on %s x %d process(es): %d images, %d steps per epoch "
                "of %d images per process", start_epoch, cfg.epochs, device, info.world_size,
                len(loader.dataset), len(loader), cfg.batch_size)
    if distributed.is_main_process():
        _drop_metric_rows(folder, start_epoch)
    for epoch in range(start_epoch, cfg.epochs + 1):
        lrs = adjust_learning_rate(optimizer, epoch, base_lrs, cfg.lr_decay_frequency)
        _set_epoch(loader, epoch)
        started = time.perf_counter()
        stats = train_one_epoch(model, criterion, optimizer, loader, device, epoch, cfg, scaler)
        if distributed.is_main_process():
            _report_epoch(folder, epoch, lrs, stats, time.perf_counter() - started,
                          head1_trained)
        if epoch == cfg.epochs or epoch % cfg.checkpoint_interval == 0:
            _save(folder, model_without_ddp, optimizer, epoch, cfg, generator)


def run(cfg: Config) -> str:
    """Train as configured and return the path of the final checkpoint.

    Raises:
        PipelineError: the experiment folder exists, weights or the resume checkpoint are
            missing or do not fit, or the train split is empty.
        FloatingPointError: the loss became NaN or infinite.
    """
    device = resolve_device(cfg.device, cfg.gpus)
    distributed.init_distributed(device)
    resume_path = _resume_path(cfg) if cfg.resume else None
    images = dataset_folder(cfg.data_root, cfg.dataset_name)
    if cfg.epochs > 0 and not os.path.isdir(images):
        raise PipelineError(f"image folder not found: {images} (check --data_root and "
                            "--dataset_name)")
    folder = _open_experiment(cfg)
    try:
        return _train(cfg, folder, device, resume_path)
    except BaseException as error:
        _record_failure(os.path.join(folder, "train.log"), error)
        raise


def _record_failure(log_path: str, error: BaseException) -> None:
    """Write why the run stopped to `train.log` only (stderr gets main.py's one line)."""
    if isinstance(error, KeyboardInterrupt):
        message = "run interrupted (Ctrl-C)"
    else:
        text = str(error).splitlines()[0] if str(error) else ""
        message = f"run failed: {type(error).__name__}: {text}"
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, message, None, None)
    target = os.path.abspath(log_path)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and handler.baseFilename == target:
            handler.handle(record)


def _train(cfg: Config, folder: str, device: torch.device, resume_path: str | None) -> str:
    """Build, load, train and save; return the path of the final checkpoint."""
    seed_everything(cfg.seed + distributed.get_info().rank)
    model = build_training_model(cfg, load_weights=resume_path is None).to(device)
    optimizer = build_optimizer(model, cfg.lr, lr_classifier_ratio=cfg.lr_classifier_ratio,
                                momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    generator = torch.Generator().manual_seed(cfg.seed)
    start_epoch = 1
    if resume_path is not None:
        start_epoch = _resume(cfg, resume_path, model, optimizer, generator)
    if start_epoch > cfg.epochs + 1:
        raise PipelineError(f"--resume: the checkpoint is at epoch {start_epoch - 1}, beyond "
                            f"--epochs {cfg.epochs}")
    if cfg.epochs == 0:
        return _save(folder, model, optimizer, 0, cfg, generator)
    _train_epochs(cfg, folder, model, optimizer, base_lrs, generator, device, start_epoch)
    return os.path.join(folder, checkpoint_name(cfg.epochs, cfg.epochs))
