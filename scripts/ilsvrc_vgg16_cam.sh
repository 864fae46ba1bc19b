#!/usr/bin/env bash
# ILSVRC, VGG16, CAM family: the vanilla backbone, then the sigmoid branch on the frozen backbone,
# then evaluation of both with CAM. Hyper-parameters: SPEC §9.2.
# Usage: bash scripts/ilsvrc_vgg16_cam.sh  (environment overrides: see scripts/paper_common.sh)
# Needs the ImageNet train metadata: python scripts/make_ilsvrc_train_metadata.py.
# Note: branch epochs: 3 as in the README and scripts/run_train.sh of the authors; their command
# list says 10 (SPEC A12).
set -euo pipefail
cd "$(dirname "$0")/.."

DATASET=ILSVRC
ARCH=vgg16
FAMILY=cam
VANILLA_MODE=train
LFM_VANILLA=false
EPOCHS_VANILLA=10
DECAY_VANILLA=3
LR_VANILLA=1.654502e-5
WD_VANILLA=5e-4
LFM_B2=false
EPOCHS_B2=3
DECAY_B2=3
LR_B2=0.003
WD_B2=5e-4
UNFREEZE=fc2

source scripts/paper_common.sh
run_all
