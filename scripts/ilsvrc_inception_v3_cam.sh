#!/usr/bin/env bash
# ILSVRC, InceptionV3, CAM family: the vanilla backbone, then the sigmoid branch on the frozen
# backbone, then evaluation of both with CAM. Hyper-parameters (SPEC §9.2):
# configs/ILSVRC/inception_v3_cam_{vanilla,b2}.yaml.
# Needs the ImageNet train metadata: python scripts/make_ilsvrc_train_metadata.py.
# Usage: bash scripts/ilsvrc_inception_v3_cam.sh
# (environment overrides: see scripts/paper_common.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/paper_common.sh
run_paper ILSVRC inception_v3 cam
