# Shared steps of the paper's runs, sourced by scripts/<dataset>_<architecture>_<family>.sh, which
# call `run_paper DATASET ARCH FAMILY` (FAMILY: cam or grad).
#
# The hyper-parameters (SPEC §9.2) live in configs/<DATASET>/<ARCH>_<FAMILY>_vanilla.yaml (the
# vanilla backbone) and configs/<DATASET>/<ARCH>_<FAMILY>_b2.yaml (the sigmoid branch), read with
# `main.py --config`; flags given here override them. Evaluation reads the same file as the
# training it evaluates.
# Environment overrides: PYTHON, ROOT, DATA_ROOT, METADATA_ROOT, WORKERS, GPUS, BATCH_SIZE (all
# steps; default: the configs' value), VANILLA_CKPT (skip the vanilla training and fine-tune this
# checkpoint), STEPS (any of "vanilla b2 eval", default all three).

: "${PYTHON:=python}"
: "${DATA_ROOT:=dataset/}"
: "${METADATA_ROOT:=metadata/}"
: "${WORKERS:=4}"
: "${GPUS:=0}"
: "${STEPS:=vanilla b2 eval}"

run_paper() {
  local dataset="$1" arch="$2" family="$3"
  local root="${ROOT:-experiment/${dataset}}"
  local vanilla_config="configs/${dataset}/${arch}_${family}_vanilla.yaml"
  local b2_config="configs/${dataset}/${arch}_${family}_b2.yaml"
  local vanilla_name="${arch}_${family}_vanilla" b2_name="${arch}_${family}_b2"
  local vanilla_ckpt="${VANILLA_CKPT:-${root}/${vanilla_name}/last_checkpoint.pth.tar}"
  local eval_methods=(cam)
  if [[ "${family}" == "grad" ]]; then eval_methods=(gradcam gradcam++ xgradcam layercam); fi
  local common=(--data_root "${DATA_ROOT}" --metadata_root "${METADATA_ROOT}"
    --mask_root "${DATA_ROOT}" --root "${root}" --workers "${WORKERS}" --gpus "${GPUS}"
    ${BATCH_SIZE:+--batch_size "${BATCH_SIZE}"})
  local method

  if [[ " ${STEPS} " == *" vanilla "* && ! -f "${vanilla_ckpt}" ]]; then
    "${PYTHON}" main.py --config "${vanilla_config}" "${common[@]}" \
      --experiment_name "${vanilla_name}"
  fi
  if [[ " ${STEPS} " == *" b2 "* ]]; then
    "${PYTHON}" main.py --config "${b2_config}" "${common[@]}" --experiment_name "${b2_name}" \
      --ft_ckpt "${vanilla_ckpt}"
  fi
  if [[ " ${STEPS} " == *" eval "* ]]; then
    # Each evaluates {root}/{name}/last_checkpoint.pth.tar, or --ft_ckpt if it is absent.
    for method in "${eval_methods[@]}"; do
      "${PYTHON}" main.py --config "${vanilla_config}" "${common[@]}" --method "${method}" \
        --experiment_name "${vanilla_name}" --eval_only --eval_checkpoint_type last \
        --ft_ckpt "${vanilla_ckpt}"
      "${PYTHON}" main.py --config "${b2_config}" "${common[@]}" --method "${method}" \
        --experiment_name "${b2_name}" --eval_only --eval_checkpoint_type last
    done
    "${PYTHON}" scripts/collect_results.py "${root}/${vanilla_name}" "${root}/${b2_name}"
  fi
}
