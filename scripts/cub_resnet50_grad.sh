#!/usr/bin/env bash
# CUB, ResNet50, gradient family: the vanilla backbone, then the sigmoid branch on the frozen
# backbone, then evaluation of both with Grad-CAM, Grad-CAM++, XGradCAM and LayerCAM.
# Hyper-parameters (SPEC §9.2): configs/CUB/resnet50_grad_{vanilla,b2}.yaml.
# Usage: bash scripts/cub_resnet50_grad.sh
# (environment overrides: see scripts/paper_common.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/paper_common.sh
run_paper CUB resnet50 grad
