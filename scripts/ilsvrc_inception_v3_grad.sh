#!/usr/bin/env bash
# ILSVRC, InceptionV3, gradient family: the vanilla backbone, then the sigmoid branch on the
# frozen backbone, then evaluation of both with Grad-CAM, Grad-CAM++, XGradCAM and LayerCAM.
# Hyper-parameters: SPEC §9.2.
# Usage: bash scripts/ilsvrc_inception_v3_grad.sh  (environment overrides: see
# scripts/paper_common.sh)
# Vanilla backbone: torchvision's ImageNet weights, saved with --epochs 0 (no training).
set -euo pipefail
cd "$(dirname "$0")/.."

DATASET=ILSVRC
ARCH=inception_v3
FAMILY=grad
VANILLA_MODE=torchvision
LFM_VANILLA=false
LFM_B2=false
EPOCHS_B2=10
DECAY_B2=3
LR_B2=5e-4
WD_B2=5e-4
UNFREEZE=fc2

source scripts/paper_common.sh
run_all
