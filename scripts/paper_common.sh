# Shared steps of the paper's runs, sourced by scripts/<dataset>_<architecture>_<family>.sh.
#
# The sourcing script sets, for its dataset, backbone and model family (SPEC §9.2):
#   DATASET ARCH FAMILY
#   VANILLA_MODE     "train" (train the backbone) or "torchvision" (ImageNet weights, --epochs 0)
#   LFM_VANILLA EPOCHS_VANILLA DECAY_VANILLA LR_VANILLA WD_VANILLA   (vanilla backbone)
#   LFM_B2 EPOCHS_B2 DECAY_B2 LR_B2 WD_B2 UNFREEZE                   (sigmoid branch)
# and optionally LOC_THRESHOLD (default 0.2) and BATCH_VANILLA (default BATCH_SIZE).
# Environment overrides: PYTHON, ROOT, DATA_ROOT, METADATA_ROOT, BATCH_SIZE, WORKERS, GPUS,
# VANILLA_CKPT (skip the vanilla training and fine-tune this checkpoint), STEPS (any of
# "vanilla b2 eval", default all three).

: "${PYTHON:=python}"
: "${ROOT:=experiment/${DATASET}}"
: "${DATA_ROOT:=dataset/}"
: "${METADATA_ROOT:=metadata/}"
: "${BATCH_SIZE:=32}"
: "${BATCH_VANILLA:=${BATCH_SIZE}}"
: "${WORKERS:=4}"
: "${GPUS:=0}"
: "${LOC_THRESHOLD:=0.2}"
: "${STEPS:=vanilla b2 eval}"

if [[ "${FAMILY}" == "cam" ]]; then
  TRAIN_METHOD=cam
  EVAL_METHODS=(cam)
else
  TRAIN_METHOD=gradcam
  EVAL_METHODS=(gradcam gradcam++ xgradcam layercam)
fi
VANILLA_NAME="${ARCH}_${FAMILY}_vanilla"
B2_NAME="${ARCH}_${FAMILY}_b2"
: "${VANILLA_CKPT:=${ROOT}/${VANILLA_NAME}/last_checkpoint.pth.tar}"

common_flags() {
  echo --dataset_name "${DATASET}" --data_root "${DATA_ROOT}" --metadata_root "${METADATA_ROOT}" \
    --mask_root "${DATA_ROOT}" --architecture "${ARCH}" --root "${ROOT}" --workers "${WORKERS}" \
    --gpus "${GPUS}"
}

train_vanilla() {
  local flags=($(common_flags) --method "${TRAIN_METHOD}" --experiment_name "${VANILLA_NAME}"
    --large_feature_map "${LFM_VANILLA}" --model_structure vanilla --pretrained true)
  if [[ "${VANILLA_MODE}" == "torchvision" ]]; then
    # SPEC §9.2: no training; torchvision's ImageNet weights (incl. the 1000-class head) are
    # saved as the vanilla checkpoint. Needs the weight file locally (--pretrained_path).
    "${PYTHON}" main.py "${flags[@]}" --epochs 0
  else
    "${PYTHON}" main.py "${flags[@]}" --unfreeze_layer all --epochs "${EPOCHS_VANILLA}" \
      --lr_decay_frequency "${DECAY_VANILLA}" --lr "${LR_VANILLA}" \
      --weight_decay "${WD_VANILLA}" --batch_size "${BATCH_VANILLA}"
  fi
}

train_b2() {
  "${PYTHON}" main.py $(common_flags) --method "${TRAIN_METHOD}" --experiment_name "${B2_NAME}" \
    --large_feature_map "${LFM_B2}" --model_structure b2 --unfreeze_layer "${UNFREEZE}" \
    --ft_ckpt "${VANILLA_CKPT}" --epochs "${EPOCHS_B2}" --lr_decay_frequency "${DECAY_B2}" \
    --lr "${LR_B2}" --weight_decay "${WD_B2}" --batch_size "${BATCH_SIZE}"
}

# Evaluates {ROOT}/{name}/last_checkpoint.pth.tar, or the extra flags' --ft_ckpt if it is absent.
evaluate() {
  local structure="$1" name="$2" lfm="$3" method
  shift 3
  for method in "${EVAL_METHODS[@]}"; do
    "${PYTHON}" main.py $(common_flags) --method "${method}" --experiment_name "${name}" \
      --large_feature_map "${lfm}" --model_structure "${structure}" --eval_only \
      --eval_checkpoint_type last --loc_threshold "${LOC_THRESHOLD}" --batch_size "${BATCH_SIZE}" \
      "$@"
  done
}

run_all() {
  if [[ " ${STEPS} " == *" vanilla "* && ! -f "${VANILLA_CKPT}" ]]; then train_vanilla; fi
  if [[ " ${STEPS} " == *" b2 "* ]]; then train_b2; fi
  if [[ " ${STEPS} " == *" eval "* ]]; then
    evaluate vanilla "${VANILLA_NAME}" "${LFM_VANILLA}" --ft_ckpt "${VANILLA_CKPT}"
    evaluate b2 "${B2_NAME}" "${LFM_B2}"
    "${PYTHON}" scripts/collect_results.py "${ROOT}/${VANILLA_NAME}" "${ROOT}/${B2_NAME}"
  fi
}
