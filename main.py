"""Train the dual-branch classifier or evaluate weakly-supervised localization.

Usage (the authors' flags; see `python main.py --help` and docs/pipeline.md)::

    # vanilla backbone
    python main.py --dataset_name CUB --architecture resnet50 --method cam \
        --large_feature_map TRUE --epoch 50 --lr_decay_frequency 15 --lr 2.3222617e-4 \
        --weight_decay 1e-4 --experiment_name resnet50_cam_vanilla --root experiment/CUB
    # sigmoid branch on the frozen backbone
    python main.py ... --model_structure b2 --unfreeze_layer fc2 \
        --ft_ckpt experiment/CUB/resnet50_cam_vanilla/last_checkpoint.pth.tar
    # evaluation of the last checkpoint
    python main.py ... --model_structure b2 --eval_only --eval_checkpoint_type last
    # the same on N GPUs of one machine (docs/scaling.md)
    torchrun --standalone --nproc_per_node=N main.py ...
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence

import inference
import train
from config import Config, ConfigError, PipelineError, get_config
from data_loaders import UnreadableImageError
from wsol.data.metadata import MetadataError
from wsol.engine import distributed
from wsol.engine.flags import str2bool
from wsol.models.checkpoints import CheckpointMismatchError, CheckpointReadError

_INPUT_ERRORS = (PipelineError, MetadataError, CheckpointReadError, CheckpointMismatchError,
                 FileNotFoundError, UnreadableImageError)
INTERRUPTED = 130  # the shell's status for a process ended by Ctrl-C (128 + SIGINT)
_RESTART_FLAGS = ("--resume", "--override_cache")


def _without_flags(argv: Sequence[str], names: Sequence[str]) -> list[str]:
    """`argv` without the flags `names` and their values (`--flag value`, `--flag=value`, or a
    bare boolean `--flag`)."""
    kept: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        index += 1
        if token.split("=", 1)[0] not in names:
            kept.append(token)
        elif "=" not in token and index < len(argv) and _is_value(token, argv[index]):
            index += 1
    return kept


def _is_value(flag: str, token: str) -> bool:
    """Whether `token` is the value of `flag` (a boolean flag may stand alone)."""
    if flag == "--resume":
        return True
    try:
        str2bool(token)
    except argparse.ArgumentTypeError:
        return False
    return True


def _rerun_command(cfg: Config, argv: Sequence[str], *extra: str) -> str:
    """The command line of this run with `--resume`/`--override_cache` replaced by `extra`."""
    world_size = distributed.get_info().world_size
    launcher = (["torchrun", f"--nproc_per_node={world_size}"] if world_size > 1
                else ["python"])
    return shlex.join([*launcher, "main.py", *_without_flags(argv, _RESTART_FLAGS), *extra])


def _interrupted_message(cfg: Config, argv: Sequence[str]) -> str:
    """One line: what Ctrl-C left behind and the command that continues."""
    if cfg.eval_only:
        return f"interrupted; no results were written. Run again: {_rerun_command(cfg, argv)}"
    folder = cfg.log_folder
    if os.path.isfile(os.path.join(folder, train.LATEST_POINTER)):
        return (f"interrupted; resume with: "
                f"{_rerun_command(cfg, argv, '--resume', 'auto')}")
    if not os.path.isdir(folder) or train.completed_no_epoch(folder):
        return (f"interrupted before the first epoch completed; start again with: "
                f"{_rerun_command(cfg, argv)}")
    return (f"interrupted before a checkpoint was saved (--checkpoint_interval "
            f"{cfg.checkpoint_interval}); start again with: "
            f"{_rerun_command(cfg, argv, '--override_cache', 'true')}")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags and run training or evaluation; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        cfg = get_config(argv)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        if cfg.eval_only:
            inference.evaluate(cfg)
        else:
            train.run(cfg)
    except _INPUT_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if distributed.is_main_process():
            print(_interrupted_message(cfg, argv), file=sys.stderr)
        return INTERRUPTED
    finally:
        distributed.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
