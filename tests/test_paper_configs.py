"""The paper's hyper-parameter files (configs/) and the scripts that read them."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from config import get_config

REPO = Path(__file__).resolve().parent.parent
CONFIGS = sorted(REPO.glob("configs/*/*.yaml"))
SCRIPTS = sorted(path for path in REPO.glob("scripts/*_*_*.sh")
                 if "run_paper " in path.read_text(encoding="utf-8"))
EVAL_METHODS = {"cam": ("cam",), "grad": ("gradcam", "gradcam++", "xgradcam", "layercam")}
# Flags a test passes to validate a file without weights, metadata or data.
OVERRIDDEN = {"pretrained", "metadata_root", "ft_ckpt"}


def _values(path: Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _family(method: str) -> str:
    return "cam" if method == "cam" else "grad"


def _validation_argv(path: Path, values: dict, tmp_path: Path) -> list[str]:
    """Flags that let `validate` pass: empty split folders, a placeholder checkpoint."""
    for split in ("train", "test"):
        (tmp_path / values["dataset_name"] / split).mkdir(parents=True, exist_ok=True)
    checkpoint = tmp_path / "vanilla.pth.tar"
    checkpoint.write_bytes(b"")
    return ["--config", str(path), "--metadata_root", str(tmp_path), "--pretrained", "false",
            "--ft_ckpt", str(checkpoint)]


def test_every_dataset_backbone_and_family_has_both_files() -> None:
    expected = {f"configs/{dataset}/{arch}_{family}_{structure}.yaml"
                for dataset in ("CUB", "ILSVRC", "OpenImages", "CARS")
                for arch in ("vgg16", "resnet50", "inception_v3")
                for family in ("cam", "grad") for structure in ("vanilla", "b2")}
    assert {str(path.relative_to(REPO)) for path in CONFIGS} == expected


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_config_is_valid_for_training_and_evaluation(path: Path, tmp_path: Path) -> None:
    values = _values(path)
    family = _family(values["method"])
    assert path.parent.name == values["dataset_name"]
    assert path.stem == f"{values['architecture']}_{family}_{values['model_structure']}"
    argv = _validation_argv(path, values, tmp_path)

    cfg = get_config(argv)
    for key, value in values.items():
        if key not in OVERRIDDEN:
            expected = float(value) if isinstance(getattr(cfg, key), float) else value
            assert getattr(cfg, key) == expected, key
    assert cfg.family == family and not cfg.eval_only
    for method in EVAL_METHODS[family]:
        evaluation = get_config(argv + ["--eval_only", "true", "--method", method])
        assert evaluation.family == family
        assert evaluation.loc_threshold == values.get("loc_threshold", 0.2)


def test_paper_hyper_parameters_spot_checks() -> None:
    """A few SPEC §9.2 rows, read back from the files."""
    def read(name: str) -> dict:
        return _values(REPO / "configs" / name)

    assert read("CUB/resnet50_cam_vanilla.yaml")["lr"] == pytest.approx(2.3222617e-4)
    assert float(read("ILSVRC/vgg16_cam_b2.yaml")["lr"]) == 0.003
    assert read("ILSVRC/vgg16_cam_b2.yaml")["epochs"] == 3
    assert read("ILSVRC/resnet50_grad_vanilla.yaml")["epochs"] == 0
    assert read("ILSVRC/resnet50_grad_b2.yaml")["large_feature_map"] is False
    assert read("CUB/inception_v3_grad_vanilla.yaml")["batch_size"] == 64
    assert read("CUB/inception_v3_grad_b2.yaml")["loc_threshold"] == 0.05
    assert read("CARS/inception_v3_cam_b2.yaml")["unfreeze_layer"] == "SPG_A4_2"
    assert read("CUB/vgg16_grad_b2.yaml")["unfreeze_layer"] == "classifier_2"


def _recorded_calls(script: Path, tmp_path: Path) -> list[list[str]]:
    """Run a paper script with a PYTHON that only records its arguments."""
    recorder = tmp_path / "python"
    log = tmp_path / "calls"
    recorder.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$*" >> "$CALLS"\n',
                        encoding="utf-8")
    recorder.chmod(0o755)
    env = {**os.environ, "PYTHON": str(recorder), "CALLS": str(log),
           "ROOT": str(tmp_path / "runs")}
    subprocess.run(["bash", str(script)], env=env, check=True, capture_output=True)
    return [line.split() for line in log.read_text(encoding="utf-8").splitlines()]


def test_twenty_four_scripts() -> None:
    assert len(SCRIPTS) == 24


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_script_trains_and_evaluates_with_its_configs(script: Path, tmp_path: Path) -> None:
    match = re.fullmatch(r"(cub|ilsvrc|openimages|cars)_(vgg16|resnet50|inception_v3)_(cam|grad)",
                         script.stem)
    assert match, script.name
    arch, family = match.group(2), match.group(3)
    calls = _recorded_calls(script, tmp_path)
    main_calls = [call for call in calls if call[0] == "main.py"]
    configs = [call[call.index("--config") + 1] for call in main_calls]
    assert all((REPO / config).is_file() for config in configs)
    assert {Path(config).stem for config in configs} == {f"{arch}_{family}_vanilla",
                                                         f"{arch}_{family}_b2"}
    assert {Path(config).parent.name.lower() for config in configs} == {match.group(1)}
    evaluations = [call for call in main_calls if "--eval_only" in call]
    assert len(evaluations) == 2 * len(EVAL_METHODS[family])
    assert len(main_calls) == len(evaluations) + 2
    assert calls[-1][0] == "scripts/collect_results.py"


def test_scripts_are_valid_bash() -> None:
    for script in [*SCRIPTS, REPO / "scripts" / "paper_common.sh"]:
        subprocess.run(["bash", "-n", str(script)], check=True)
