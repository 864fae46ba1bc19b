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

import sys
from collections.abc import Sequence

import inference
import train
from config import ConfigError, PipelineError, get_config
from data_loaders import UnreadableImageError
from wsol.engine import distributed
from wsol.models.checkpoints import CheckpointReadError
from wsol.data.metadata import MetadataError

_INPUT_ERRORS = (PipelineError, MetadataError, CheckpointReadError, FileNotFoundError,
                 UnreadableImageError)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags and run training or evaluation; return the exit status."""
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
    finally:
        distributed.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
