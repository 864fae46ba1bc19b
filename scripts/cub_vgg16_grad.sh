#!/usr/bin/env bash
# CUB, VGG16, gradient family: the vanilla backbone, then the sigmoid branch on the frozen
# backbone, then evaluation of both with Grad-CAM, Grad-CAM++, XGradCAM and LayerCAM. Hyper-
# parameters: SPEC §9.2.
# Usage: bash scripts/cub_vgg16_grad.sh  (environment overrides: see scripts/paper_common.sh)
# Note: the authors' "+ours" line for this run names no checkpoint (likely incomplete); its lr
# 1e-3 is used for the branch.
set -euo pipefail
cd "$(dirname "$0")/.."

DATASET=CUB
ARCH=vgg16
FAMILY=grad
VANILLA_MODE=train
LFM_VANILLA=false
EPOCHS_VANILLA=50
DECAY_VANILLA=15
LR_VANILLA=1e-4
WD_VANILLA=5e-4
LFM_B2=false
EPOCHS_B2=50
DECAY_B2=15
LR_B2=1e-3
WD_B2=5e-4
UNFREEZE=classifier_2

source scripts/paper_common.sh
run_all
