#!/usr/bin/env bash
# OpenImages, InceptionV3, gradient family: the vanilla backbone, then the sigmoid branch on the
# frozen backbone, then evaluation of both with Grad-CAM, Grad-CAM++, XGradCAM and LayerCAM.
# Hyper-parameters: SPEC §9.2.
# Usage: bash scripts/openimages_inception_v3_grad.sh  (environment overrides: see
# scripts/paper_common.sh)
# Note: large_feature_map has no effect on the grad-family InceptionV3.
set -euo pipefail
cd "$(dirname "$0")/.."

DATASET=OpenImages
ARCH=inception_v3
FAMILY=grad
VANILLA_MODE=train
LFM_VANILLA=true
EPOCHS_VANILLA=10
DECAY_VANILLA=3
LR_VANILLA=3e-4
WD_VANILLA=5e-4
LFM_B2=true
EPOCHS_B2=10
DECAY_B2=3
LR_B2=3e-4
WD_B2=5e-4
UNFREEZE=fc2

source scripts/paper_common.sh
run_all
