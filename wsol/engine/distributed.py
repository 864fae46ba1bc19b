"""Process-group helpers for `torchrun`: one process per device, a single process otherwise.

`torchrun` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; without them (or with
``WORLD_SIZE=1``) every helper here is a no-op for a single process. CUDA runs use NCCL with
``cuda:{LOCAL_RANK}``, CPU runs use gloo. See docs/scaling.md.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["DistInfo", "all_gather_objects", "all_reduce", "all_reduce_state", "barrier",
           "cleanup", "env_info", "get_info", "init_distributed", "is_distributed",
           "is_main_process"]

logger = logging.getLogger(__name__)

TIMEOUT = datetime.timedelta(minutes=30)


@dataclass(frozen=True)
class DistInfo:
    """Rank of this process, its rank on the node and the number of processes."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        """More than one process takes part."""
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    if not value.isdigit():
        raise ValueError(f"environment variable {name} must be a non-negative integer, "
                         f"got {value!r}")
    return int(value)


def env_info() -> DistInfo:
    """The layout `torchrun` announces in ``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` (default: 1)."""
    info = DistInfo(_env_int("RANK", 0), _env_int("LOCAL_RANK", 0), _env_int("WORLD_SIZE", 1))
    if info.world_size < 1 or info.rank >= info.world_size:
        raise ValueError(f"RANK {info.rank} does not fit WORLD_SIZE {info.world_size}")
    return info


def is_distributed() -> bool:
    """A process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def get_info() -> DistInfo:
    """The layout of the initialised process group, or a single process."""
    if not is_distributed():
        return DistInfo()
    return DistInfo(dist.get_rank(), env_info().local_rank, dist.get_world_size())


def is_main_process() -> bool:
    """Rank 0, the process that logs and writes files (always true for a single process)."""
    return get_info().rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group `torchrun` describes (NCCL for CUDA, gloo for the CPU).

    Idempotent; a single process (no ``WORLD_SIZE`` or ``WORLD_SIZE=1``) starts no group.

    Raises:
        RuntimeError: torch was built without distributed support.
    """
    info = env_info()
    if not info.enabled or is_distributed():
        return get_info() if is_distributed() else info
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed; run a single process")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, timeout=TIMEOUT)
    logger.debug("rank %d of %d joined the %s process group", info.rank, info.world_size,
                 backend)
    return get_info()


def cleanup() -> None:
    """Leave the process group, if one was joined."""
    if is_distributed():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process arrives here."""
    if is_distributed():
        dist.barrier()


def _reduce_device() -> torch.device:
    """Device of the tensors the backend reduces (NCCL needs the current CUDA device)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """Sum (or ``max``) ``tensor`` over all processes; returns a new tensor on its device."""
    if not is_distributed():
        return tensor.clone()
    ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}
    reduced = tensor.detach().to(_reduce_device()).clone()
    dist.all_reduce(reduced, op=ops[op])
    return reduced.to(tensor.device)


def _reduce_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        reduced = all_reduce(torch.from_numpy(np.array(value))).numpy()
        return reduced.item() if reduced.ndim == 0 else reduced
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"cannot sum a {type(value).__name__} across processes")
    dtype = torch.int64 if isinstance(value, int) else torch.float64
    return type(value)(all_reduce(torch.tensor(value, dtype=dtype)).item())


def all_reduce_state(state: Mapping[str, Any], keep: tuple[str, ...] = ("config",)
                     ) -> dict[str, Any]:
    """Sum the counters of a ``state_dict()`` (arrays, numbers, nested dicts) over processes.

    Entries named in ``keep`` are settings and are copied unchanged. Every process must pass a
    state with the same keys in the same order. Integer counters sum exactly.
    """
    reduced: dict[str, Any] = {}
    for key, value in state.items():
        if key in keep:
            reduced[key] = value
        elif isinstance(value, Mapping):
            reduced[key] = all_reduce_state(value, keep=())
        else:
            reduced[key] = _reduce_value(value)
    return reduced


def all_gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj`` (picklable), in rank order."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered
