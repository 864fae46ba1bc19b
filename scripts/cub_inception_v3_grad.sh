#!/usr/bin/env bash
# CUB, InceptionV3, gradient family: the vanilla backbone, then the sigmoid branch on the frozen
# backbone, then evaluation of both with Grad-CAM, Grad-CAM++, XGradCAM and LayerCAM. Hyper-
# parameters: SPEC §9.2.
# Usage: bash scripts/cub_inception_v3_grad.sh  (environment overrides: see
# scripts/paper_common.sh)
# Evaluated with --loc_threshold 0.05 as in the authors' command list.
# The authors train this vanilla backbone with batch size 64.
set -euo pipefail
cd "$(dirname "$0")/.."

DATASET=CUB
ARCH=inception_v3
FAMILY=grad
VANILLA_MODE=train
LFM_VANILLA=true
EPOCHS_VANILLA=50
DECAY_VANILLA=15
LR_VANILLA=2.24844746e-3
WD_VANILLA=5e-4
LFM_B2=true
EPOCHS_B2=10
DECAY_B2=15
LR_B2=0.09
WD_B2=5e-4
UNFREEZE=fc2
LOC_THRESHOLD=0.05
BATCH_VANILLA=64

source scripts/paper_common.sh
run_all
