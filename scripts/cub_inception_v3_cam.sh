#!/usr/bin/env bash
# CUB, InceptionV3, CAM family: the vanilla backbone, then the sigmoid branch on the frozen
# backbone, then evaluation of both with CAM. Hyper-parameters: SPEC §9.2.
# Usage: bash scripts/cub_inception_v3_cam.sh  (environment overrides: see
# scripts/paper_common.sh)
# Evaluated with --loc_threshold 0.05 as in the authors' command list.
set -euo pipefail
cd "$(dirname "$0")/.."

DATASET=CUB
ARCH=inception_v3
FAMILY=cam
VANILLA_MODE=train
LFM_VANILLA=true
EPOCHS_VANILLA=50
DECAY_VANILLA=15
LR_VANILLA=2.24844746e-3
WD_VANILLA=5e-4
LFM_B2=true
EPOCHS_B2=50
DECAY_B2=15
LR_B2=1e-4
WD_B2=5e-4
UNFREEZE=SPG_A4_2
LOC_THRESHOLD=0.05

source scripts/paper_common.sh
run_all
