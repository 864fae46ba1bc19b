#!/usr/bin/env bash
# OpenImages, ResNet50, CAM family: the vanilla backbone, then the sigmoid branch on the frozen
# backbone, then evaluation of both with CAM. Hyper-parameters: SPEC §9.2.
# Usage: bash scripts/openimages_resnet50_cam.sh  (environment overrides: see
# scripts/paper_common.sh)
# Note: the authors' "cam + ours" line is a copy of a Grad-CAM run (lr 0.02); the branch settings
# of the grad-family ResNet50 (same network) are used.
set -euo pipefail
cd "$(dirname "$0")/.."

DATASET=OpenImages
ARCH=resnet50
FAMILY=cam
VANILLA_MODE=train
LFM_VANILLA=false
EPOCHS_VANILLA=10
DECAY_VANILLA=3
LR_VANILLA=1.07117324e-3
WD_VANILLA=1e-4
LFM_B2=false
EPOCHS_B2=10
DECAY_B2=3
LR_B2=5e-4
WD_B2=5e-4
UNFREEZE=fc2

source scripts/paper_common.sh
run_all
