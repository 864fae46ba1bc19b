#!/usr/bin/env bash
# ILSVRC, InceptionV3, CAM family: the vanilla backbone, then the sigmoid branch on the frozen
# backbone, then evaluation of both with CAM. Hyper-parameters: SPEC §9.2.
# Usage: bash scripts/ilsvrc_inception_v3_cam.sh  (environment overrides: see
# scripts/paper_common.sh)
# Needs the ImageNet train metadata: python scripts/make_ilsvrc_train_metadata.py.
set -euo pipefail
cd "$(dirname "$0")/.."

DATASET=ILSVRC
ARCH=inception_v3
FAMILY=cam
VANILLA_MODE=train
LFM_VANILLA=true
EPOCHS_VANILLA=10
DECAY_VANILLA=3
LR_VANILLA=3.606503e-4
WD_VANILLA=5e-4
LFM_B2=true
EPOCHS_B2=10
DECAY_B2=3
LR_B2=5e-4
WD_B2=5e-4
UNFREEZE=SPG_A4_2

source scripts/paper_common.sh
run_all
