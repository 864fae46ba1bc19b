"""Command-line configuration: the authors' flags, YAML overlay, derived settings, validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config import Config, ConfigError, get_config, str2bool, validate, write_config
from wsol.engine.runtime import resolve_device

METADATA = str(Path(__file__).resolve().parent.parent / "metadata")
BASE = ["--metadata_root", METADATA, "--dataset_name", "CUB", "--architecture", "resnet50"]
TRAIN = BASE + ["--pretrained", "false"]
EVAL = BASE + ["--eval_only"]


@pytest.fixture()
def ckpt(tmp_path: Path) -> str:
    """An existing file to pass as --ft_ckpt (validation only checks that it exists)."""
    path = tmp_path / "vanilla.pth.tar"
    path.write_bytes(b"")
    return str(path)


def _config(*argv: str) -> Config:
    return get_config(list(argv))


def test_epoch_is_an_explicit_alias_of_epochs() -> None:
    assert _config(*TRAIN, "--epoch", "3").epochs == 3
    assert _config(*TRAIN, "--epochs", "4").epochs == 4


def test_prefixes_of_flags_are_rejected() -> None:
    with pytest.raises(SystemExit):
        _config(*TRAIN, "--epoch", "1", "--weight_dec", "0.1")


def test_readme_commands_parse(ckpt: str) -> None:
    common = ["--metadata_root", METADATA, "--dataset_name", "CUB", "--architecture", "vgg16",
              "--large_feature_map", "FALSE", "--batch_size", "32", "--workers", "4",
              "--gpus", "0", "--lr", "0.003", "--weight_decay", "5.00E-04",
              "--model_structure", "b2", "--ft_ckpt", ckpt, "--wandb", "on"]
    train = _config(*common, "--method", "cam", "--epoch", "3", "--lr_decay_frequency", "3",
                    "--unfreeze_layer", "fc2")
    assert (train.epochs, train.unfreeze_layer, train.large_feature_map) == (3, "fc2", False)
    evaluation = _config(*common, "--method", "gradcam", "--eval_only",
                         "--eval_checkpoint_type", "last")
    assert evaluation.eval_only and evaluation.family == "grad"


def test_str2bool_accepts_the_authors_spellings() -> None:
    assert all(str2bool(v) for v in ("yes", "TRUE", "t", "Y", "1"))
    assert not any(str2bool(v) for v in ("no", "False", "f", "N", "0"))
    assert _config(*EVAL, "--save_scoremaps").save_scoremaps is True
    assert _config(*EVAL, "--save_scoremaps", "false").save_scoremaps is False


def test_derived_settings() -> None:
    cfg = _config(*TRAIN, "--epoch", "1", "--root", "runs", "--experiment_name", "x")
    assert cfg.unfreeze_layer == "all"  # vanilla training trains everything (SPEC A18)
    assert (cfg.family, cfg.num_classes, cfg.log_folder) == ("cam", 200, str(Path("runs", "x")))
    assert _config(*EVAL, "--method", "layercam").family == "grad"


def test_config_is_frozen_and_written_as_json(tmp_path: Path) -> None:
    cfg = _config(*TRAIN, "--epoch", "1")
    with pytest.raises(AttributeError, match="frozen"):
        cfg.lr = 1.0
    write_config(cfg, str(tmp_path / "config.json"))
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["epochs"] == 1 and saved["iou_threshold_list"] == [30, 50, 70]


def test_yaml_values_and_command_line_override(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("architecture: vgg16\nepoch: 5\nlr: 0.5\nlarge_feature_map: true\n"
                    "iou_threshold_list: [50, 70]\npretrained: false\n")
    cfg = _config("--config", str(path), "--metadata_root", METADATA, "--lr", "0.1")
    assert (cfg.architecture, cfg.epochs, cfg.lr, cfg.large_feature_map) == ("vgg16", 5, 0.1, True)
    assert cfg.iou_threshold_list == (50, 70)


def test_yaml_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("architecture: vgg16\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=rf"'learning_rate'.*{path.name}"):
        _config("--config", str(path), "--metadata_root", METADATA)


@pytest.mark.parametrize(("argv", "message"), [
    (["--metadata_root", METADATA, "--epoch", "1"], "--architecture is required"),
    (TRAIN, "--epochs"),
    (TRAIN + ["--epoch", "-1"], "--epochs"),
    (EVAL + ["--iou_threshold_list", "30", "70"], "must contain 50"),
    (EVAL + ["--loc_threshold", "0.2005"], "--loc_threshold"),
    (EVAL + ["--crop_size", "192"], "--crop_size must be 224"),
    (EVAL + ["--num_val_sample_per_class", "6"], "<= 5 for CUB"),
    (["--metadata_root", METADATA, "--dataset_name", "OpenImages", "--architecture", "vgg16",
      "--eval_only", "--num_val_sample_per_class", "26"], "<= 25 for OpenImages"),
    (TRAIN + ["--epoch", "1", "--model_structure", "b2", "--unfreeze_layer", "fc2"],
     "--ft_ckpt"),
    (TRAIN + ["--epoch", "1", "--model_structure", "b2"], "--unfreeze_layer none"),
    (TRAIN + ["--epoch", "1", "--model_structure", "b2", "--unfreeze_layer", "SPG_A4_2",
              "--ft_ckpt", "x"], "not valid for b2 resnet50"),
    (["--metadata_root", METADATA, "--architecture", "vgg16", "--method", "gradcam",
      "--epoch", "1", "--model_structure", "b2", "--unfreeze_layer", "fc2", "--ft_ckpt", "x"],
     "accepted: classifier, classifier_2, branch2, all"),
    (TRAIN + ["--epoch", "1", "--model_structure", "b2", "--unfreeze_layer", "fc2",
              "--ft_ckpt", "missing.pth.tar"], "--ft_ckpt: file not found: missing.pth.tar"),
    (BASE + ["--epoch", "1", "--pretrained_path", "no_weights/"],
     "never downloaded.*resnet50-19c8e357.pth.*--pretrained false"),
    (TRAIN + ["--epoch", "1", "--resume", "auto", "--override_cache"], "give only one"),
    (TRAIN + ["--epoch", "1", "--init_weight", "false"], "--init_weight"),
    (TRAIN + ["--epoch", "1", "--device", "tpu"], "--device"),
    (TRAIN + ["--epoch", "1", "--gpus", "a,b"], "--gpus"),
    (TRAIN + ["--epoch", "1", "--amp", "fp16", "--device", "cpu"], "--amp fp16 needs a CUDA"),
    (TRAIN + ["--epoch", "1", "--crop_size", "300"], "--crop_size"),
    (["--metadata_root", METADATA, "--dataset_name", "CARS", "--architecture", "vgg16",
      "--eval_only", "--split", "val"], "--split val"),
    (EVAL + ["--resume", "auto"], "--resume"),
])
def test_validation_errors(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("+", r"\+")):
        get_config(argv)


def test_branch2_alias_and_head_names_are_accepted(ckpt: str) -> None:
    for name in ("branch2", "fc2", "all"):
        cfg = _config(*TRAIN, "--epoch", "1", "--model_structure", "b2", "--unfreeze_layer", name,
                      "--ft_ckpt", ckpt)
        assert cfg.unfreeze_layer == name


def test_amp_defaults_to_off_and_bf16_is_accepted_on_the_cpu() -> None:
    assert _config(*TRAIN, "--epoch", "1").amp == "off"
    assert _config(*TRAIN, "--epoch", "1", "--amp", "bf16", "--device", "cpu").amp == "bf16"


def test_torchrun_processes_take_their_own_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(ConfigError, match="cuda:LOCAL_RANK"):
        validate(Config(**{**vars(_config(*TRAIN, "--epoch", "1")), "device": "cuda:0"}))
    assert str(resolve_device(_config(*TRAIN, "--epoch", "1", "--device", "cpu").device)) == "cpu"
