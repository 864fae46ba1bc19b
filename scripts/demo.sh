#!/usr/bin/env bash
# Synthetic end-to-end demo on the CPU (about 5 minutes on 2 cores), called by `make demo`:
#   1. generate the synthetic dataset (SYNTHETIC with boxes, SYNTHETIC_MASK with masks);
#   2. train a vanilla ResNet50 from scratch (no ImageNet weights are needed);
#   3. train the sigmoid branch on the frozen backbone (model_structure b2, --unfreeze_layer branch2);
#   4. evaluate CAM and Grad-CAM with and without the branch, on boxes and on masks;
#   5. print the comparison table (also written to ${DEMO_ROOT}/results.md).
# ResNet50 is the same network in the CAM and the gradient family (SPEC §3.1), so both methods use
# the same two checkpoints. Training runs on 96-pixel crops to fit the time budget; evaluation runs
# in the fixed 224x224 frame.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${PYTHON:=$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python)}"
: "${DEMO_ROOT:=experiment/demo}"
: "${NUM_TRAIN:=200}"
: "${NUM_TEST:=40}"
: "${IMAGE_SIZE:=160}"
: "${VANILLA_EPOCHS:=8}"
: "${BRANCH_EPOCHS:=6}"
: "${CROP_SIZE:=96}"
: "${RESIZE_SIZE:=108}"
: "${BATCH_SIZE:=16}"
# One intra-op thread: on small shared machines oversubscribed threads are many times slower.
: "${OMP_NUM_THREADS:=1}"
export OMP_NUM_THREADS

DATA="${DEMO_ROOT}/dataset"
META="${DEMO_ROOT}/metadata"
RUNS="${DEMO_ROOT}/runs"
COMMON=(--data_root "${DATA}" --metadata_root "${META}" --mask_root "${DATA}" --root "${RUNS}"
  --architecture resnet50 --batch_size "${BATCH_SIZE}" --workers 0 --device cpu
  --override_cache true)
start=${SECONDS}

step() { printf '\n== %s (%ds)\n' "$1" $((SECONDS - start)); }

step "synthetic dataset"
"${PYTHON}" -m wsol.data.synthetic --data_root "${DATA}" --metadata_root "${META}" \
  --num_train "${NUM_TRAIN}" --num_val 0 --num_test "${NUM_TEST}" --image_size "${IMAGE_SIZE}" \
  --overwrite

step "vanilla ResNet50 from scratch"
"${PYTHON}" main.py "${COMMON[@]}" --dataset_name SYNTHETIC --method cam --pretrained false \
  --experiment_name vanilla --model_structure vanilla --epochs "${VANILLA_EPOCHS}" --lr 0.001 \
  --lr_decay_frequency 6 --crop_size "${CROP_SIZE}" --resize_size "${RESIZE_SIZE}" \
  --checkpoint_interval 100

# Frozen-eval BatchNorm: the branch sees the same features in training and evaluation, which
# keeps its training stable on 16-image batches (the authors' default is batch statistics, A6).
step "sigmoid branch on the frozen backbone"
"${PYTHON}" main.py "${COMMON[@]}" --dataset_name SYNTHETIC --method cam --experiment_name b2 \
  --model_structure b2 --unfreeze_layer branch2 --bn_mode frozen_eval \
  --ft_ckpt "${RUNS}/vanilla/last_checkpoint.pth.tar" --epochs "${BRANCH_EPOCHS}" --lr 0.05 \
  --lr_decay_frequency 4 --crop_size "${CROP_SIZE}" --resize_size "${RESIZE_SIZE}" \
  --checkpoint_interval 100

for method in cam gradcam; do
  for structure in vanilla b2; do
    step "evaluation: ${method}, ${structure}"
    "${PYTHON}" main.py "${COMMON[@]}" --dataset_name SYNTHETIC --method "${method}" \
      --experiment_name "${structure}" --model_structure "${structure}" --eval_only
    "${PYTHON}" main.py "${COMMON[@]}" --dataset_name SYNTHETIC_MASK --method "${method}" \
      --experiment_name "${structure}_masks" --model_structure "${structure}" --eval_only \
      --ft_ckpt "${RUNS}/${structure}/last_checkpoint.pth.tar" --num_overlays 0
  done
done

step "results"
"${PYTHON}" scripts/collect_results.py "${RUNS}" --output "${DEMO_ROOT}/results.md"
printf '\nDemo finished in %ds; overlays in %s/*/overlays_*/, table in %s/results.md\n' \
  $((SECONDS - start)) "${RUNS}" "${DEMO_ROOT}"
