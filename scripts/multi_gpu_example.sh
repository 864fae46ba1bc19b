#!/usr/bin/env bash
# Train the sigmoid branch (the CUB ResNet50 settings of scripts/cub_resnet50_cam.sh) and
# evaluate it on N GPUs of one machine with torchrun (DDP, NCCL).
#   NPROC=4 CKPT=experiment/CUB/resnet50_cam_vanilla/last_checkpoint.pth.tar \
#     scripts/multi_gpu_example.sh
# --batch_size is per process: with N processes one step sees N x BATCH_PER_GPU images. To keep
# the authors' global batch of 32 (one GPU), set BATCH_PER_GPU=$((32 / NPROC)). Evaluation is
# sharded without padding; its results equal a single-process run (docs/scaling.md).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${PYTHON:=$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python)}"
: "${NPROC:=2}"
: "${GLOBAL_BATCH:=32}"
: "${BATCH_PER_GPU:=$((GLOBAL_BATCH / NPROC))}"
: "${DATASET:=CUB}"
: "${ARCH:=resnet50}"
: "${DATA_ROOT:=dataset}"
: "${METADATA_ROOT:=metadata}"
: "${ROOT:=experiment/${DATASET}}"
: "${NAME:=${ARCH}_cam_b2_ddp${NPROC}}"
: "${CKPT:=${ROOT}/${ARCH}_cam_vanilla/last_checkpoint.pth.tar}"
: "${EPOCHS:=50}"
: "${LR:=1e-4}"
: "${AMP:=off}"
: "${WORKERS:=4}"
: "${OMP_NUM_THREADS:=4}"
export OMP_NUM_THREADS

if (( GLOBAL_BATCH % NPROC != 0 )); then
  echo "GLOBAL_BATCH=${GLOBAL_BATCH} is not a multiple of NPROC=${NPROC}" >&2
  exit 2
fi

COMMON=(--dataset_name "${DATASET}" --data_root "${DATA_ROOT}" --metadata_root "${METADATA_ROOT}"
  --mask_root "${DATA_ROOT}" --root "${ROOT}" --experiment_name "${NAME}" --architecture "${ARCH}"
  --large_feature_map TRUE --model_structure b2 --workers "${WORKERS}" --amp "${AMP}")
RUN=("${PYTHON}" -m torch.distributed.run --standalone --nproc_per_node="${NPROC}" main.py)

"${RUN[@]}" "${COMMON[@]}" --method cam --unfreeze_layer branch2 --ft_ckpt "${CKPT}" \
  --epochs "${EPOCHS}" --lr "${LR}" --lr_decay_frequency 15 --weight_decay 1e-4 \
  --batch_size "${BATCH_PER_GPU}"

for method in cam gradcam; do
  "${RUN[@]}" "${COMMON[@]}" --method "${method}" --eval_only --eval_checkpoint_type last \
    --batch_size 32
done
