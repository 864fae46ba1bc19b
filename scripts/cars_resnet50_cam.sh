#!/usr/bin/env bash
# CARS, ResNet50, CAM family: the vanilla backbone, then the sigmoid branch on the frozen backbone,
# then evaluation of both with CAM. Hyper-parameters (SPEC §9.2):
# configs/CARS/resnet50_cam_{vanilla,b2}.yaml.
# Usage: bash scripts/cars_resnet50_cam.sh
# (environment overrides: see scripts/paper_common.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/paper_common.sh
run_paper CARS resnet50 cam
