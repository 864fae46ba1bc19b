#!/usr/bin/env bash
# Device check in one command, for a CUDA machine (under 8 minutes):
#   1. the GPU tests (pytest -m gpu);
#   2. the CAM-method benchmark on cuda (ResNet50, against the grad-cam package);
#   3. the cost of the sigmoid branch on cuda (scripts/benchmark_models.py);
#   4. a short run on the synthetic set with bf16 mixed precision: a vanilla ResNet50 from scratch,
#      the sigmoid branch on the frozen backbone, CAM and Grad-CAM evaluation of the branch.
# The step limits add up to 7 min 50 s.
# Each step has its own time limit; a summary line per step follows. Everything goes to
# ${GPU_CHECK_ROOT} (default experiment/gpu_check), the full output to gpu_check.log there.
# Record the summary in docs/benchmarks.md ("GPU check") whenever it has run.
# Usage: bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."

: "${PYTHON:=$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python)}"
: "${GPU_CHECK_ROOT:=experiment/gpu_check}"

if ! "${PYTHON}" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" \
    2>/dev/null; then
  echo "gpu_check: no CUDA device (torch.cuda.is_available() is False); nothing was run" >&2
  exit 2
fi

mkdir -p "${GPU_CHECK_ROOT}"
LOG="${GPU_CHECK_ROOT}/gpu_check.log"
DATA="${GPU_CHECK_ROOT}/dataset"
META="${GPU_CHECK_ROOT}/metadata"
RUNS="${GPU_CHECK_ROOT}/runs"
COMMON=(--data_root "${DATA}" --metadata_root "${META}" --mask_root "${DATA}" --root "${RUNS}"
  --architecture resnet50 --batch_size 64 --workers 4 --device cuda --amp bf16
  --override_cache true)
SUMMARY=()
failed=0
start=${SECONDS}

# step NAME LIMIT_SECONDS COMMAND...: run, log, and remember status and duration.
step() {
  local name="$1" limit="$2" began=${SECONDS} status
  shift 2
  printf '\n== %s\n' "${name}" | tee -a "${LOG}"
  timeout "${limit}" "$@" 2>&1 | tee -a "${LOG}"
  status=${PIPESTATUS[0]}
  if [[ ${status} -ne 0 ]]; then failed=1; fi
  SUMMARY+=("$(printf '%-44s %s  %4ds' "${name}" \
    "$([[ ${status} -eq 0 ]] && echo ok || echo "FAILED (status ${status})")" \
    $((SECONDS - began)))")
}

: > "${LOG}"
"${PYTHON}" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, \
'device', torch.cuda.get_device_name(0))" | tee -a "${LOG}"
step "GPU tests (pytest -m gpu)" 120 "${PYTHON}" -m pytest -m gpu -q
step "CAM methods, resnet50, cuda" 60 "${PYTHON}" scripts/benchmark_cam.py --device cuda \
  --architecture resnet50 --batch_size 32 --reps 5
step "sigmoid branch cost, cuda" 60 "${PYTHON}" scripts/benchmark_models.py --device cuda \
  --batch_size 32 --reps 10
step "synthetic set (400 train, 200 test)" 30 "${PYTHON}" -m wsol.data.synthetic \
  --data_root "${DATA}" --metadata_root "${META}" --num_train 400 --num_val 0 --num_test 200 \
  --image_size 224 --overwrite
step "vanilla ResNet50, 3 epochs, --amp bf16" 75 "${PYTHON}" main.py "${COMMON[@]}" \
  --dataset_name SYNTHETIC --method cam --pretrained false --experiment_name vanilla \
  --model_structure vanilla --epochs 3 --lr 0.01 --lr_decay_frequency 2 --checkpoint_interval 100
step "sigmoid branch, 2 epochs, --amp bf16" 45 "${PYTHON}" main.py "${COMMON[@]}" \
  --dataset_name SYNTHETIC --method cam --experiment_name b2 --model_structure b2 \
  --unfreeze_layer branch2 --bn_mode frozen_eval --epochs 2 --lr 0.05 \
  --ft_ckpt "${RUNS}/vanilla/last_checkpoint.pth.tar" --checkpoint_interval 100
for method in cam gradcam; do
  step "${method} evaluation of the branch (masks), bf16" 40 "${PYTHON}" main.py "${COMMON[@]}" \
    --dataset_name SYNTHETIC_MASK --method "${method}" --experiment_name b2 --model_structure b2 \
    --eval_only --ft_ckpt "${RUNS}/b2/last_checkpoint.pth.tar" --num_overlays 0
done

printf '\n== summary (%ds in all; full output in %s)\n' $((SECONDS - start)) "${LOG}" |
  tee -a "${LOG}"
printf '%s\n' "${SUMMARY[@]}" | tee -a "${LOG}"
exit "${failed}"
