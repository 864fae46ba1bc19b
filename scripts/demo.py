"""The synthetic demo on the CPU: the softmax head's distortions, then vanilla vs + the branch.

1. Generate the synthetic set (`SYNTHETIC` boxes and `SYNTHETIC_MASK` masks of the same images).
2. For every seed: train a vanilla TinyCNN from scratch and the sigmoid branch on its frozen
   backbone; evaluate both with CAM and Grad-CAM on boxes and masks. TinyCNN, like ResNet50, is
   one network (GAP and a linear head) in both families.
3. On the first seed's vanilla model: add one vector to every class row of the softmax head (and
   one number to every bias), once uniformly and once until every row is negative (sign
   collapse); evaluate the shifted checkpoints and print what moved and what did not, and what the
   same shifts do to the sigmoid head.
4. Print the seed table (mean ± std, `scripts/collect_results.py --over_seeds`).

Every run is a call of `main.main` with the flags a user would type, in `--jobs` processes.
Everything is written under `--root`.

Usage::

    python scripts/demo.py [--root experiment/demo] [--seeds 1 2 3] [--jobs 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import collect_results  # noqa: E402
import torch  # noqa: E402

import main as pipeline  # noqa: E402
from data_loaders import get_data_loader  # noqa: E402
from wsol.data.synthetic import generate_synthetic_dataset  # noqa: E402
from wsol.models.base import DualBranchModel  # noqa: E402
from wsol.models.checkpoints import (  # noqa: E402
    MODEL_SETTINGS,
    load_training_checkpoint,
    model_from_checkpoint,
    recorded_model_settings,
    save_checkpoint,
)
from wsol.report.head_shift import (  # noqa: E402
    ShiftEffect,
    collapse_shift,
    head_outputs,
    output_layer,
    shift_effect,
    shift_head,
    uniform_shift,
)

ARCHITECTURE = "tiny_cnn"
METHODS = ("cam", "gradcam")
SHIFTS = ("uniform", "collapse")
BIAS_SHIFT = 1.0
LINE = "-" * 100


@dataclass(frozen=True)
class Settings:
    """Sizes and training lengths of the demo."""

    root: str
    num_train: int
    num_test: int
    image_size: int
    vanilla_epochs: int
    branch_epochs: int
    crop_size: int
    resize_size: int
    batch_size: int

    @property
    def data(self) -> str:
        return os.path.join(self.root, "dataset")

    @property
    def metadata(self) -> str:
        return os.path.join(self.root, "metadata")

    def common_flags(self, runs: str) -> list[str]:
        return ["--data_root", self.data, "--metadata_root", self.metadata, "--mask_root",
                self.data, "--root", runs, "--architecture", ARCHITECTURE, "--batch_size",
                str(self.batch_size), "--workers", "0", "--device", "cpu",
                "--override_cache", "true"]


def _run(argv: list[str]) -> None:
    status = pipeline.main(argv)
    if status != 0:
        raise RuntimeError(f"main.py {' '.join(argv)} exited with status {status}")


def _evaluate(settings: Settings, runs: str, name: str, method: str, structure: str,
              checkpoint: str, seed: int, overlays: int) -> None:
    """Evaluate `checkpoint` on boxes ({name}) and masks ({name}_masks)."""
    for dataset, experiment, count in (("SYNTHETIC", name, overlays),
                                       ("SYNTHETIC_MASK", f"{name}_masks", 0)):
        _run(settings.common_flags(runs) + [
            "--dataset_name", dataset, "--method", method, "--experiment_name", experiment,
            "--model_structure", structure, "--eval_only", "--ft_ckpt", checkpoint,
            "--seed", str(seed), "--num_overlays", str(count)])


def _checkpoint(runs: str, structure: str) -> str:
    return os.path.join(runs, structure, "last_checkpoint.pth.tar")


def train(settings: Settings, seed: int) -> None:
    """One seed: a vanilla TinyCNN from scratch, then the sigmoid branch on its frozen backbone."""
    runs = os.path.join(settings.root, "runs", f"seed{seed}")
    common = settings.common_flags(runs) + [
        "--dataset_name", "SYNTHETIC", "--method", "cam", "--seed", str(seed),
        "--crop_size", str(settings.crop_size), "--resize_size", str(settings.resize_size),
        "--checkpoint_interval", "100"]
    _run(common + ["--experiment_name", "vanilla", "--model_structure", "vanilla",
                   "--pretrained", "false", "--epochs", str(settings.vanilla_epochs),
                   "--lr", "0.01",
                   "--lr_decay_frequency", str(max(1, settings.vanilla_epochs * 3 // 4))])
    # Frozen-eval BatchNorm: the branch sees the features the evaluation sees (SPEC A6).
    _run(common + ["--experiment_name", "b2", "--model_structure", "b2",
                   "--unfreeze_layer", "branch2", "--bn_mode", "frozen_eval",
                   "--ft_ckpt", _checkpoint(runs, "vanilla"), "--epochs",
                   str(settings.branch_epochs), "--lr", "0.05",
                   "--lr_decay_frequency", str(max(1, settings.branch_epochs * 3 // 4))])


def evaluate(settings: Settings, seed: int, method: str) -> None:
    """One seed and method: the vanilla model and the branch, on boxes and masks.

    TinyCNN, like ResNet50, is one network in both families, so CAM and Grad-CAM evaluate the
    same two checkpoints.
    """
    runs = os.path.join(settings.root, "runs", f"seed{seed}")
    for structure in ("vanilla", "b2"):
        _evaluate(settings, runs, f"{structure}_{method}", method, structure,
                  _checkpoint(runs, structure), seed, 8 if seed == 1 else 0)


def _shifted_name(kind: str) -> str:
    return f"vanilla_{kind}_shift"


def evaluate_shifted(settings: Settings, seed: int, kind: str, method: str) -> None:
    """Evaluate the shifted vanilla checkpoint written by :func:`write_shifted_checkpoints`."""
    runs = os.path.join(settings.root, "distortions")
    checkpoint = os.path.join(runs, "checkpoints", f"{_shifted_name(kind)}.pth.tar")
    _evaluate(settings, runs, f"{_shifted_name(kind)}_{method}", method, "vanilla", checkpoint,
              seed, 0)


def _job(job: tuple) -> str:
    """Run one task of the process pool with its output in a log file; return its name."""
    task, settings, *args = job
    name = "_".join(str(arg) for arg in (task.__name__, *args))
    started = time.perf_counter()
    with open(os.path.join(settings.root, "logs", f"{name}.txt"), "w",
              encoding="utf-8") as log, contextlib.redirect_stderr(log), \
            contextlib.redirect_stdout(log):
        task(settings, *args)
    return f"{name} ({time.perf_counter() - started:.0f}s)"


def _shift_model(model: DualBranchModel, branch: int, kind: str) -> None:
    weight = output_layer(model, branch).weight.detach().clone()
    shift_head(model, branch, uniform_shift(weight) if kind == "uniform"
               else collapse_shift(weight), BIAS_SHIFT)


def write_shifted_checkpoints(settings: Settings, seed: int) -> None:
    """The seed's vanilla checkpoint with its softmax head shifted, one file per kind of shift."""
    source = _checkpoint(os.path.join(settings.root, "runs", f"seed{seed}"), "vanilla")
    recorded = recorded_model_settings(load_training_checkpoint(source))
    for kind in SHIFTS:
        model = model_from_checkpoint(source)
        _shift_model(model, 1, kind)
        target = os.path.join(settings.root, "distortions", "checkpoints",
                              f"{_shifted_name(kind)}.pth.tar")
        save_checkpoint(target, {**{name: recorded[name] for name in MODEL_SETTINGS},
                                 "state_dict": model.state_dict()})


def _metrics(runs: str, name: str, method: str) -> dict[str, float]:
    values = {}
    for experiment in (name, f"{name}_masks"):
        with open(os.path.join(runs, experiment, f"results_{method}.json"),
                  encoding="utf-8") as handle:
            values.update(json.load(handle)["metrics"])
    return values


def _row(label: str, effect: ShiftEffect | None, metrics: dict[str, float]) -> str:
    identical = "—" if effect is None else ("yes" if effect.predictions_identical else "NO")
    change = "—" if effect is None else f"{effect.softmax_change:.1e}"
    return (f"{label:<28}{identical:>11}{change:>13}{metrics['top1_cls']:>10.2f}"
            f"{metrics['gt_loc']:>10.2f}{metrics['maxboxacc_v2']:>13.2f}{metrics['PxAP']:>8.2f}")


def distortion_report(settings: Settings, seed: int) -> str:
    """What the shifts did: predictions, softmax probabilities, maps; and the sigmoid head."""
    runs = os.path.join(settings.root, "runs", f"seed{seed}")
    shifted_runs = os.path.join(settings.root, "distortions")
    loader = get_data_loader("test", data_root=settings.data, metadata_root=settings.metadata,
                             dataset_name="SYNTHETIC", batch_size=settings.batch_size, workers=0)
    vanilla = head_outputs(model_from_checkpoint(_checkpoint(runs, "vanilla")), loader)
    branch_model = model_from_checkpoint(_checkpoint(runs, "b2"))
    branch = head_outputs(branch_model, loader)
    effects, branch_effects = {}, {}
    for kind in SHIFTS:
        path = os.path.join(shifted_runs, "checkpoints", f"{_shifted_name(kind)}.pth.tar")
        effects[kind] = shift_effect(vanilla, head_outputs(model_from_checkpoint(path), loader))
        shifted_branch = model_from_checkpoint(_checkpoint(runs, "b2"))
        _shift_model(shifted_branch, 2, kind)
        branch_effects[kind] = shift_effect(branch, head_outputs(shifted_branch, loader))
    lines = [LINE, f"1. The softmax head's free shift and its sign collapse (seed {seed}, "
             f"{len(loader.dataset)} test images)", LINE,
             f"Every class row of the softmax head += one vector v, every bias += {BIAS_SHIFT}.",
             "  uniform:  v = max|W| on every channel",
             "  collapse: v = -(max over classes of W) - 0.1 max|W|: every class row negative", "",
             f"{'model':<28}{'same preds':>11}{'max |dp|':>13}{'Top-1 Cls':>10}{'GT-known':>10}"
             f"{'MaxBoxAccV2':>13}{'PxAP':>8}"]
    for method in METHODS:
        name = "CAM" if method == "cam" else "Grad-CAM"
        lines.append(_row(f"{name}, trained", None, _metrics(runs, f"vanilla_{method}", method)))
        for kind in SHIFTS:
            lines.append(_row(f"{name}, {kind} shift", effects[kind],
                              _metrics(shifted_runs, f"{_shifted_name(kind)}_{method}", method)))
        lines.append(_row(f"{name} + Ours (reference)", None,
                          _metrics(runs, f"b2_{method}", method)))
    lines += ["", "The same shifts on the sigmoid head (branch) are not free:"]
    for kind in SHIFTS:
        effect = branch_effects[kind]
        before, after = effect.sigmoid_loss
        softmax = effects[kind].cross_entropy
        lines.append(f"  {kind:<9} sigmoid probabilities change by up to "
                     f"{effect.sigmoid_change:.3f}, branch loss {before:.4f} -> {after:.4f}; "
                     f"softmax cross-entropy {softmax[0]:.6f} -> {softmax[1]:.6f}")
    positive = float((output_layer(branch_model, 2).weight > 0).float().mean()) * 100
    lines.append(f"  the branch's maps weight channels by max(w, 0) ({positive:.0f}% of its "
                 "weights are positive): a collapsed, all-negative row gives a flat map, never an "
                 "inverted one")
    return "\n".join(lines)


def seed_table(settings: Settings) -> str:
    """The trained comparison, mean ± std over seeds."""
    records = [collect_results.load_record(path) for path in
               collect_results.find_result_files([os.path.join(settings.root, "runs")])]
    return collect_results.format_tables(collect_results.build_rows(records, over_seeds=True),
                                         over_seeds=True)


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, list[int], int]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="experiment/demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--jobs", type=int, default=2, help="parallel (seed, family) pipelines")
    parser.add_argument("--num_train", type=int, default=400)
    parser.add_argument("--num_test", type=int, default=200)
    parser.add_argument("--image_size", type=int, default=160, help="largest image side")
    parser.add_argument("--vanilla_epochs", type=int, default=8)
    parser.add_argument("--branch_epochs", type=int, default=4)
    parser.add_argument("--crop_size", type=int, default=96, help="training crop")
    parser.add_argument("--resize_size", type=int, default=108, help="training resize")
    parser.add_argument("--batch_size", type=int, default=32)
    args = parser.parse_args(argv)
    settings = Settings(args.root, args.num_train, args.num_test, args.image_size,
                        args.vanilla_epochs, args.branch_epochs, args.crop_size,
                        args.resize_size, args.batch_size)
    return settings, args.seeds, args.jobs


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo and print its two tables."""
    settings, seeds, jobs = parse_args(argv)
    started = time.perf_counter()
    generate_synthetic_dataset(settings.data, settings.metadata, num_train=settings.num_train,
                               num_val=0, num_test=settings.num_test,
                               image_size=settings.image_size, overwrite=True)
    print(f"synthetic set: {settings.num_train} train, {settings.num_test} test images "
          f"({time.perf_counter() - started:.0f}s)", flush=True)
    os.makedirs(os.path.join(settings.root, "logs"), exist_ok=True)
    torch.set_num_threads(1)
    try:
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            def run(work: list[tuple]) -> None:
                for name in pool.imap_unordered(_job, work):
                    print(f"  {name} done at {time.perf_counter() - started:.0f}s", flush=True)

            run([(train, settings, seed) for seed in seeds])
            write_shifted_checkpoints(settings, seeds[0])
            run([(evaluate, settings, seed, method) for seed in seeds for method in METHODS]
                + [(evaluate_shifted, settings, seeds[0], kind, method)
                   for kind in SHIFTS for method in METHODS])
            pool.close()
            pool.join()
        with open(os.path.join(settings.root, "logs", "distortion_report.txt"), "w",
                  encoding="utf-8") as log, contextlib.redirect_stderr(log):
            report = distortion_report(settings, seeds[0])
    except RuntimeError as error:
        print(f"error: {error} (logs: {settings.root}/logs/)", file=sys.stderr)
        return 1
    table = seed_table(settings)
    text = (f"{report}\n\n{LINE}\n2. Vanilla vs + sigmoid branch, {len(seeds)} seeds "
            f"(mean ± std; changes are per-seed differences)\n{LINE}\n{table}")
    print(text)
    with open(os.path.join(settings.root, "results.md"), "w", encoding="utf-8") as handle:
        handle.write(text)
    print(f"demo finished in {time.perf_counter() - started:.0f}s; logs, overlays and results "
          f"under {settings.root}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
