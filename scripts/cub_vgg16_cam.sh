#!/usr/bin/env bash
# CUB, VGG16, CAM family: the vanilla backbone, then the sigmoid branch on the frozen backbone,
# then evaluation of both with CAM. Hyper-parameters: SPEC §9.2.
# Usage: bash scripts/cub_vgg16_cam.sh  (environment overrides: see scripts/paper_common.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

DATASET=CUB
ARCH=vgg16
FAMILY=cam
VANILLA_MODE=train
LFM_VANILLA=false
EPOCHS_VANILLA=50
DECAY_VANILLA=15
LR_VANILLA=1.268269e-5
WD_VANILLA=5e-4
LFM_B2=false
EPOCHS_B2=50
DECAY_B2=15
LR_B2=5e-5
WD_B2=5e-4
UNFREEZE=fc2

source scripts/paper_common.sh
run_all
