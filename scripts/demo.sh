#!/usr/bin/env bash
# Synthetic demo on the CPU, called by `make demo` (docs/demo.md): the softmax head's free shift
# and sign collapse on a trained model, then vanilla vs + sigmoid branch (CAM and Grad-CAM, boxes
# and masks) over three seeds. Output and tables under ${DEMO_ROOT} (default experiment/demo);
# extra arguments go to scripts/demo.py (see its --help).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${PYTHON:=$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python)}"
: "${DEMO_ROOT:=experiment/demo}"
# One intra-op thread per process (two processes run at once): on small shared machines
# oversubscribed threads are many times slower.
: "${OMP_NUM_THREADS:=1}"
export OMP_NUM_THREADS

"${PYTHON}" scripts/demo.py --root "${DEMO_ROOT}" "$@"
