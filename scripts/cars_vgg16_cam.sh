#!/usr/bin/env bash
# CARS, VGG16, CAM family: the vanilla backbone, then the sigmoid branch on the frozen backbone,
# then evaluation of both with CAM. Hyper-parameters (SPEC §9.2):
# configs/CARS/vgg16_cam_{vanilla,b2}.yaml.
# Usage: bash scripts/cars_vgg16_cam.sh
# (environment overrides: see scripts/paper_common.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/paper_common.sh
run_paper CARS vgg16 cam
