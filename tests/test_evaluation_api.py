"""The evaluator's interface: merge, workers, the command line, bad input, fuzzing."""

import json
import os

import numpy as np
import pytest

from wsol.data.metadata import load_metadata
from wsol.evaluation import main
from wsol.metrics.evaluation import (
    BoxEvaluator,
    ScoreMapError,
    _load_scoremap,
    build_evaluator,
    evaluate_scoremaps,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METADATA_ROOT = os.path.join(ROOT, "metadata")
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "wsol_reference", "ilsvrc_test_300")
NUM = 24


@pytest.fixture(scope="module")
def fixture_maps() -> tuple[list[str], np.ndarray, np.ndarray, dict]:
    with np.load(FIXTURE + ".npz") as data:
        ids = [str(i) for i in data["image_ids"][:NUM]]
        maps, correct = data["scoremaps"][:NUM], data["pred_correct"][:NUM].astype(bool)
    return ids, maps, correct, load_metadata(METADATA_ROOT, "ILSVRC", "test")


def _write_maps(root: str, ids: list[str], maps: np.ndarray) -> None:
    for image_id, scoremap in zip(ids, maps):
        path = os.path.join(root, image_id + ".npy")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        np.save(path, scoremap)


def _strip(results: dict) -> dict:
    return {k: v for k, v in results.items() if k != "settings"}


def test_merge_and_state_dict_equal_single_pass(fixture_maps: tuple) -> None:
    ids, maps, correct, metadata = fixture_maps
    whole = BoxEvaluator(metadata, 0.01)
    whole.accumulate_batch(maps, ids, correct)
    first, second = BoxEvaluator(metadata, 0.01), BoxEvaluator(metadata, 0.01)
    first.accumulate_batch(maps[:10], ids[:10], correct[:10])
    second.accumulate_batch(maps[10:], ids[10:], correct[10:])
    restored = BoxEvaluator(metadata, 0.01)
    restored.load_state_dict(first.state_dict())
    restored.merge(second)
    assert restored.compute() == whole.compute()
    with pytest.raises(ValueError, match="different settings"):
        restored.merge(BoxEvaluator(metadata, 0.001))


def test_workers_give_identical_results(tmp_path: str, fixture_maps: tuple) -> None:
    ids, maps, correct, metadata = fixture_maps
    _write_maps(str(tmp_path), ids, maps)
    evaluator = BoxEvaluator(metadata, 0.01)
    pred = dict(zip(ids, correct.tolist()))
    one = evaluate_scoremaps(evaluator, str(tmp_path), ids, pred, workers=1)
    two = evaluate_scoremaps(evaluator, str(tmp_path), ids, pred, workers=2)
    assert one == two
    direct = BoxEvaluator(metadata, 0.01)
    direct.accumulate_batch(maps, ids, correct)
    assert one == direct.compute()


def test_command_line(tmp_path: str, fixture_maps: tuple) -> None:
    ids, maps, correct, metadata = fixture_maps
    scoremaps = os.path.join(tmp_path, "maps")
    _write_maps(scoremaps, ids, maps)
    ids_file = os.path.join(tmp_path, "ids.txt")
    with open(ids_file, "w", encoding="utf-8") as handle:
        handle.write("\n".join(ids))
    pred_file = os.path.join(tmp_path, "pred.csv")
    with open(pred_file, "w", encoding="utf-8") as handle:
        handle.write("\n".join(f"{i},{int(c)}" for i, c in zip(ids, correct)))
    output = os.path.join(tmp_path, "results.json")
    main(["--scoremap_root", scoremaps, "--metadata_root", METADATA_ROOT, "--dataset_name",
          "ILSVRC", "--split", "test", "--image_ids", ids_file, "--pred_correct", pred_file,
          "--cam_curve_interval", "0.01", "--output", output])
    with open(output, encoding="utf-8") as handle:
        results = json.load(handle)
    direct = BoxEvaluator(metadata, 0.01)
    direct.accumulate_batch(maps, ids, correct)
    expected = json.loads(json.dumps(direct.compute()))
    assert _strip(results) == expected
    for key in ("num_images", "maxboxacc_v2", "maxboxacc_IOU_30", "maxboxacc_IOU_50",
                "maxboxacc_IOU_70", "gt_loc", "top1_loc"):
        assert key in results
    assert len(results["curves"]["box_accuracy"]["50"]) == 101


def test_missing_maps_are_reported_before_any_work(tmp_path: str, fixture_maps: tuple) -> None:
    ids, maps, _, _ = fixture_maps
    _write_maps(str(tmp_path), ids[5:], maps[5:])
    ids_file = os.path.join(tmp_path, "ids.txt")
    with open(ids_file, "w", encoding="utf-8") as handle:
        handle.write("\n".join(ids))
    output = os.path.join(tmp_path, "results.json")
    with pytest.raises(SystemExit, match=f"5 of {NUM} score maps are missing"):
        main(["--scoremap_root", str(tmp_path), "--metadata_root", METADATA_ROOT,
              "--dataset_name", "ILSVRC", "--split", "test", "--image_ids", ids_file,
              "--output", output])
    assert not os.path.exists(output)


def test_invalid_maps_are_counted(tmp_path: str, fixture_maps: tuple) -> None:
    ids, maps, _, metadata = fixture_maps
    bad = maps.copy()
    bad[2, 0, 0] = np.nan
    bad[7] *= 2
    _write_maps(str(tmp_path), ids, bad)
    np.save(os.path.join(tmp_path, ids[9] + ".npy"), maps[9, :100])
    with pytest.raises(ScoreMapError, match=f"3 of {NUM} score maps are invalid, e.g. .*NaN"):
        evaluate_scoremaps(BoxEvaluator(metadata, 0.01), str(tmp_path), ids)


def test_partial_pred_correct_is_rejected(fixture_maps: tuple) -> None:
    ids, maps, _, metadata = fixture_maps
    evaluator = BoxEvaluator(metadata, 0.01)
    evaluator.accumulate(maps[0], ids[0], True)
    evaluator.accumulate(maps[1], ids[1])
    with pytest.raises(ValueError, match="give it for all or none"):
        evaluator.compute()


def test_settings_are_validated(fixture_maps: tuple) -> None:
    metadata = fixture_maps[3]
    with pytest.raises(ValueError, match="loc_iou_threshold 50 must be in"):
        BoxEvaluator(metadata, iou_threshold_list=(30, 70))
    with pytest.raises(ValueError, match="loc_threshold 0.25 is not one of the thresholds"):
        BoxEvaluator(metadata, 0.1, loc_threshold=0.25)
    with pytest.raises(ValueError, match="give mask_root"):
        build_evaluator(load_metadata(METADATA_ROOT, "OpenImages", "val"))


def test_largest_contour_metric(fixture_maps: tuple) -> None:
    ids, maps, _, metadata = fixture_maps
    evaluator = build_evaluator(metadata, cam_curve_interval=0.01, box_v2_metric=False)
    evaluator.accumulate_batch(maps, ids)
    results = evaluator.compute()
    assert results["maxboxacc_v2"] == results["maxboxacc"] == results["maxboxacc_IOU_50"]
    assert "top1_loc" not in results


@pytest.mark.parametrize("seed", range(40))
def test_fuzz_only_intended_errors(seed: int, fixture_maps: tuple) -> None:
    """Random shapes, dtypes and ranges: either a valid result or a ScoreMapError."""
    ids, _, _, metadata = fixture_maps
    rng = np.random.default_rng(seed)
    dtype = rng.choice([np.float16, np.float32, np.float64, np.int64, np.uint8, np.bool_])
    shape = [(224, 224), (224, 224), (224,), (2, 224, 224), (223, 224), (0, 0)][seed % 6]
    low, high = [(0, 1), (-1, 1), (0, 2), (0, 1e-6), (1, 1), (0, np.inf)][seed // 6 % 6]
    values = rng.uniform(low, high if np.isfinite(high) else 1, size=shape)
    if not np.isfinite(high) and values.size:
        values.flat[0] = np.inf
    with np.errstate(invalid="ignore"):
        scoremap = values.astype(dtype)
    evaluator = BoxEvaluator(metadata, 0.05)
    try:
        evaluator.accumulate(scoremap, ids[seed % NUM])
    except ScoreMapError:
        assert evaluator.num_images == 0
        return
    results = evaluator.compute()
    assert 0 <= results["maxboxacc_v2"] <= 100


MASK_FIXTURE = os.path.join(ROOT, "tests", "fixtures", "wsol_reference", "openimages_val_100")
MASKS = os.path.join(ROOT, "tests", "fixtures", "wsol_reference", "openimages_val_masks")


def _command_line_output(tmp_path, fixture: str, dataset: str, split: str, workers: int,
                         num: int) -> tuple[str, list[str]]:
    """Run `python -m wsol.evaluation` in-process on the first `num` maps of a fixture set."""
    with np.load(fixture + ".npz") as data:
        ids = [str(i) for i in data["image_ids"][:num]]
        maps = data["scoremaps"][:num]
    scoremaps = os.path.join(tmp_path, "maps")
    _write_maps(scoremaps, ids, maps)
    ids_file = os.path.join(tmp_path, "ids.txt")
    with open(ids_file, "w", encoding="utf-8") as handle:
        handle.write("\n".join(ids) + "\n")
    mask_root = os.path.join(tmp_path, "masks")
    os.makedirs(mask_root, exist_ok=True)
    if not os.path.exists(os.path.join(mask_root, dataset)):
        os.symlink(MASKS, os.path.join(mask_root, dataset))
    output = os.path.join(tmp_path, f"results_{workers}.json")
    main(["--scoremap_root", scoremaps, "--metadata_root", METADATA_ROOT, "--dataset_name",
          dataset, "--split", split, "--image_ids", ids_file, "--mask_root", mask_root,
          "--cam_curve_interval", "0.01", "--workers", str(workers), "--output", output])
    return output, sorted(os.listdir(tmp_path))


@pytest.mark.parametrize("fixture, dataset, split", [
    (FIXTURE, "ILSVRC", "test"), (MASK_FIXTURE, "OpenImages", "val")])
def test_command_line_with_workers_writes_the_same_json(tmp_path, fixture: str, dataset: str,
                                                        split: str) -> None:
    one, _ = _command_line_output(tmp_path, fixture, dataset, split, workers=1, num=NUM)
    two, files = _command_line_output(tmp_path, fixture, dataset, split, workers=2, num=NUM)
    with open(one, encoding="utf-8") as first, open(two, encoding="utf-8") as second:
        assert first.read() == second.read()
    assert not [name for name in files if name.endswith(".tmp")]


def test_command_line_failure_leaves_no_file(tmp_path, monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise TypeError("not serialisable")

    monkeypatch.setattr("wsol.engine.files.json.dumps", refuse)
    with pytest.raises(TypeError, match="not serialisable"):
        _command_line_output(tmp_path, FIXTURE, "ILSVRC", "test", workers=2, num=8)
    assert not [name for name in os.listdir(tmp_path) if name.startswith("results")]


@pytest.mark.parametrize("layout", ["float32", "float64", "fortran", "big_endian", "3-d"])
def test_score_map_files_read_as_np_load_reads_them(tmp_path, layout: str) -> None:
    values = np.random.default_rng(0).random((31, 17))
    array = {"float32": values.astype(np.float32), "float64": values,
             "fortran": np.asfortranarray(values), "big_endian": values.astype(">f8"),
             "3-d": values.reshape(1, 31, 17)}[layout]
    path = tmp_path / "map.npy"
    np.save(path, array)
    loaded = _load_scoremap(str(path))
    assert loaded.dtype == array.dtype and np.array_equal(loaded, array)


def test_truncated_score_map_file_is_named(tmp_path) -> None:
    path = tmp_path / "map.npy"
    np.save(path, np.zeros((224, 224), dtype=np.float32))
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(ScoreMapError, match=f"{path} is not a readable .npy array"):
        _load_scoremap(str(path))
