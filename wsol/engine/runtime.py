"""Runtime plumbing shared by the entry points: logging, seeding, devices, autocast, progress."""

from __future__ import annotations

import logging
import random
import sys
from contextlib import AbstractContextManager, nullcontext
from typing import TextIO

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

from wsol.engine import distributed
from wsol.engine.terminal import progress  # noqa: F401  (re-exported for the entry points)

__all__ = ["autocast", "progress", "resolve_device", "seed_everything", "setup_logging",
           "unwrap_model"]

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_HANDLERS: list[logging.Handler] = []


class _StderrHandler(logging.StreamHandler):
    """A handler that writes to ``sys.stderr`` as it is when a record is emitted, so a stream
    replaced since (by a test harness, a notebook, a redirection) is never written after close."""

    @property
    def stream(self) -> TextIO:
        """The current ``sys.stderr``."""
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        """Ignored: the stream is always the current ``sys.stderr``."""


def setup_logging(log_path: str | None, debug: bool = False) -> None:
    """Log to stderr and, when given, to ``log_path``; replaces handlers set by an earlier call.

    Processes other than rank 0 of a ``torchrun`` group write no file and log warnings only.
    """
    if not distributed.is_main_process():
        log_path = None
    root = logging.getLogger()
    while _HANDLERS:
        handler = _HANDLERS.pop()
        root.removeHandler(handler)
        handler.close()
    _HANDLERS.append(_StderrHandler())
    if log_path is not None:
        _HANDLERS.append(logging.FileHandler(log_path, encoding="utf-8"))
    for handler in _HANDLERS:
        handler.setFormatter(logging.Formatter(_LOG_FORMAT))
        root.addHandler(handler)
    level = logging.DEBUG if debug else logging.INFO
    root.setLevel(level if distributed.is_main_process() else logging.WARNING)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA), SPEC §5.4."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(device: str, gpus: str | None = None) -> torch.device:
    """The device of ``--device``; ``auto`` uses the first ``--gpus`` id when CUDA exists.

    Under torchrun (``WORLD_SIZE`` > 1) each process uses ``cuda:{LOCAL_RANK}`` unless
    ``--device cpu`` is given or CUDA is missing.
    """
    info = distributed.env_info()
    if info.enabled and device != "cpu" and torch.cuda.is_available():
        return torch.device("cuda", info.local_rank)
    if device != "auto":
        return torch.device(device)
    if not torch.cuda.is_available():
        return torch.device("cpu")
    first = gpus.split(",")[0].strip() if gpus else "0"
    return torch.device(f"cuda:{first}")


def autocast(device: torch.device, amp: str) -> AbstractContextManager:
    """Autocast context of ``--amp`` (``off``: float32, no context)."""
    if amp == "off":
        return nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return torch.autocast(device_type=device.type, dtype=dtype)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside a (Distributed)DataParallel wrapper, or the model itself."""
    return model.module if isinstance(model, (DataParallel, DistributedDataParallel)) else model
