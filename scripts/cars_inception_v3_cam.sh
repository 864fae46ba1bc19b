#!/usr/bin/env bash
# CARS, InceptionV3, CAM family: the vanilla backbone, then the sigmoid branch on the frozen
# backbone, then evaluation of both with CAM. Hyper-parameters: SPEC §9.2.
# Usage: bash scripts/cars_inception_v3_cam.sh  (environment overrides: see
# scripts/paper_common.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

DATASET=CARS
ARCH=inception_v3
FAMILY=cam
VANILLA_MODE=train
LFM_VANILLA=true
EPOCHS_VANILLA=10
DECAY_VANILLA=15
LR_VANILLA=5.678e-3
WD_VANILLA=5e-4
LFM_B2=true
EPOCHS_B2=10
DECAY_B2=15
LR_B2=1e-4
WD_B2=5e-4
UNFREEZE=SPG_A4_2

source scripts/paper_common.sh
run_all
