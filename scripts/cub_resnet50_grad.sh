#!/usr/bin/env bash
# CUB, ResNet50, gradient family: the vanilla backbone, then the sigmoid branch on the frozen
# backbone, then evaluation of both with Grad-CAM, Grad-CAM++, XGradCAM and LayerCAM. Hyper-
# parameters: SPEC §9.2.
# Usage: bash scripts/cub_resnet50_grad.sh  (environment overrides: see scripts/paper_common.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

DATASET=CUB
ARCH=resnet50
FAMILY=grad
VANILLA_MODE=train
LFM_VANILLA=true
EPOCHS_VANILLA=50
DECAY_VANILLA=15
LR_VANILLA=2.3222617e-4
WD_VANILLA=1e-4
LFM_B2=true
EPOCHS_B2=50
DECAY_B2=15
LR_B2=1e-4
WD_B2=1e-4
UNFREEZE=fc2

source scripts/paper_common.sh
run_all
