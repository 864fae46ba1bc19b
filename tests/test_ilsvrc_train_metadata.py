"""Tests of scripts/make_ilsvrc_train_metadata.py on a tiny fake ImageNet train folder."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from wsol.data.metadata import load_metadata

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts",
                      "make_ilsvrc_train_metadata.py")
WNIDS = ("n03000134", "n01440764", "n02102040")


def _load_script():
    spec = importlib.util.spec_from_file_location("make_ilsvrc_train_metadata", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = _load_script()


@pytest.fixture
def train_root(tmp_path):
    root = tmp_path / "dataset" / "ILSVRC" / "train"
    for index, wnid in enumerate(WNIDS):
        os.makedirs(root / wnid)
        for n in (5, 12, 3, 40)[:3 + index % 2]:
            (root / wnid / f"{wnid}_{n}.JPEG").write_bytes(b"")
        (root / wnid / "notes.txt").write_text("not an image")
    return str(root)


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _output(tmp_path) -> str:
    return str(tmp_path / "metadata" / "ILSVRC" / "train")


def test_writes_sorted_ids_and_wnid_labels(train_root, tmp_path, capsys):
    output = _output(tmp_path)
    assert script.main(["--train_root", train_root, "--output", output, "--allow_partial"]) == 0
    assert "wrote 10 images of 3 classes" in capsys.readouterr().out
    sorted_wnids = sorted(WNIDS)
    ids = _read(os.path.join(output, "image_ids.txt")).splitlines()
    assert ids == sorted(ids)
    assert ids[:3] == [f"train/n01440764/n01440764_{n}.JPEG" for n in (12, 3, 40)]
    labels = dict(line.split(",") for line in
                  _read(os.path.join(output, "class_labels.txt")).splitlines())
    assert list(labels) == ids
    assert all(int(labels[i]) == sorted_wnids.index(i.split("/")[1]) for i in ids)
    for name in ("image_ids.txt", "class_labels.txt"):
        assert _read(os.path.join(output, name)).endswith("\n")  # a final newline
    assert _read(os.path.join(output, "image_sizes.txt")) == ""
    assert _read(os.path.join(output, "localization.txt")) == ""
    assert not os.path.exists(os.path.join(output, "image_ids_proxy.txt"))
    metadata = load_metadata(str(tmp_path / "metadata"), "ILSVRC", "train", localization=False)
    assert metadata.image_ids == ids and len(set(metadata.class_labels.values())) == 3


def test_requires_1000_wnids_unless_partial(train_root, tmp_path, capsys):
    assert script.main(["--train_root", train_root, "--output", _output(tmp_path)]) == 1
    assert "3 synset folders, expected 1000" in capsys.readouterr().err
    assert not os.path.exists(_output(tmp_path))


def test_proxy_ids_are_seeded_per_class_subsets(train_root, tmp_path):
    output = _output(tmp_path)
    argv = ["--train_root", train_root, "--output", output, "--allow_partial",
            "--proxy_per_class", "2", "--seed", "1"]
    assert script.main(argv) == 0
    proxy = _read(os.path.join(output, "image_ids_proxy.txt")).splitlines()
    ids = set(_read(os.path.join(output, "image_ids.txt")).splitlines())
    assert len(proxy) == 6 and set(proxy) <= ids and proxy == sorted(proxy)
    assert sorted(i.split("/")[1] for i in proxy) == sorted(2 * list(WNIDS))
    assert script.main([*argv, "--overwrite"]) == 0
    assert _read(os.path.join(output, "image_ids_proxy.txt")).splitlines() == proxy
    metadata = load_metadata(str(tmp_path / "metadata"), "ILSVRC", "train", localization=False)
    assert set(proxy) <= set(metadata.class_labels)


def test_refuses_existing_output_and_too_large_proxy(train_root, tmp_path, capsys):
    output = _output(tmp_path)
    base = ["--train_root", train_root, "--output", output, "--allow_partial"]
    assert script.main(base) == 0
    assert script.main(base) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert script.main([*base, "--overwrite", "--proxy_per_class", "4"]) == 1
    assert "fewer than --proxy_per_class 4" in capsys.readouterr().err


def test_missing_train_root(tmp_path, capsys):
    missing = str(tmp_path / "none")
    assert script.main(["--train_root", missing, "--output", _output(tmp_path)]) == 1
    assert missing in capsys.readouterr().err


def test_command_line(train_root, tmp_path):
    output = _output(tmp_path)
    result = subprocess.run(
        [sys.executable, SCRIPT, "--train_root", train_root, "--output", output,
         "--allow_partial", "--proxy_per_class", "1"],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "3 proxy images" in result.stdout
    assert len(_read(os.path.join(output, "image_ids_proxy.txt")).splitlines()) == 3
