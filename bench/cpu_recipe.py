"""Rank CPU recipes for full CIFAR-10 by validation top-1 at the same pretraining wall time.

    python bench/cpu_recipe.py --prepared /path/prepared [--minutes 10] [--only NAME ...] [--write]
    python bench/cpu_recipe.py --prepared /path/prepared --confirm presets/cifar10-cpu.yaml [--write]

Each variant is a set of knob changes to presets/cifar10-cpu.yaml as it was when the ranking ran
(small_cnn w16 in fp32: ``BEFORE`` pins those keys, since the preset is now the winner). Its epochs are set so that its
pretraining fills ``--minutes`` on this machine: first every variant's images per second is
measured, one after another, by a one-epoch run on 19,200 images (the learning-rate schedule needs
the epoch count up front; keep the machine otherwise idle for this part, a few minutes). After that
the accuracies depend on the epochs only, not on what else the machine runs. Each variant is then
pretrained by the pipeline's code (`simclr.pretrain.pretrain`, no kNN monitor, no checkpoints) and
probed by the linear_eval stage's code with a narrowed search (50 probe epochs, lr 0.001 or 0.01,
no weight decay: the ranking needs the order, not the last point). Read the order on validation
top-1 (the 2 SE column is its binomial noise); the test column is for after the choice.

``--confirm PRESET`` runs one preset as it is (its epochs, its linear_eval with the full validation
search) on the prepared data and times both stages: the row that says what a preset gives and costs.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, emit, machine, today  # noqa: E402

# the preset's model and precision when the ranking ran: every variant changes these
BEFORE = {"model.encoder": "small_cnn", "model.width": 16, "pretrain.mixed_precision": "no"}
BF16 = {"pretrain.mixed_precision": "bf16"}
VARIANTS = [
    ("preset before: small_cnn w16 (128-d), fp32", {}),
    ("small_cnn w16, bf16", {**BF16}),
    ("small_cnn w32, bf16", {**BF16, "model.width": 32}),
    ("small_resnet w32, bf16", {**BF16, "model.encoder": "small_resnet", "model.width": 32}),
    ("small_resnet w48, bf16", {**BF16, "model.encoder": "small_resnet", "model.width": 48}),
    ("small_resnet w32, bf16, tau 0.3", {**BF16, "model.encoder": "small_resnet", "model.width": 32,
                                         "temperature": 0.3}),
    ("small_resnet w32, bf16, batch 256", {**BF16, "model.encoder": "small_resnet", "model.width": 32,
                                           "batch_size": 256}),
]
SECTION = "The CPU hour: ranking recipes on full CIFAR-10 at equal pretraining time (`bench/cpu_recipe.py`)"
HEADER = ("| variant | img/s (idle) | epochs in the minutes given | val_top1_h | 2 SE (val) | kNN (test) | top1_h (test) |"
          "\n|---|---|---|---|---|---|---|")  # the section's text names the date, machine and minutes
RANKING_SEARCH = {"linear_eval.search.epochs": [50], "linear_eval.search.lr": [0.001, 0.01],
                  "linear_eval.search.weight_decay": [0.0]}


def base_params(prepared: Path):
    from simclr.core.config import load_params

    return load_params(ROOT / "presets/cifar10-cpu.yaml").replace(
        **BEFORE, **{"pretrain.checkpoint_dir": "", "pretrain.knn_every": 0, "pretrain.log_every_steps": 100})


def images_per_second(changes: dict, prepared: Path) -> float:
    from simclr.pretrain import PretrainPaths, pretrain

    probe = base_params(prepared).replace(**changes, **{"pretrain.epochs": 1, "pretrain.warmup_epochs": 0,
                                                         "pretrain.train_images": 19200})
    with tempfile.TemporaryDirectory(prefix="simclr-recipe-") as tmp:
        tmp = Path(tmp)
        metrics = pretrain(probe, PretrainPaths(prepared=prepared, encoder=tmp / "calibrate.pt",
                                                metrics=tmp / "calibrate.json", history=tmp / "calibrate.csv"))
    return metrics["images_per_second"]


def run_variant(changes: dict, prepared: Path, epochs: int) -> dict:
    from simclr.linear_eval import LinearEvalPaths, linear_eval
    from simclr.pretrain import PretrainPaths, pretrain

    params = base_params(prepared).replace(**changes, **{"pretrain.epochs": epochs})
    with tempfile.TemporaryDirectory(prefix="simclr-recipe-") as tmp:
        tmp = Path(tmp)
        pretrain(params, PretrainPaths(prepared=prepared, encoder=tmp / "encoder.pt", metrics=tmp / "pretrain.json",
                                       history=tmp / "history.csv"))
        le = linear_eval(params.replace(**RANKING_SEARCH),
                         LinearEvalPaths(prepared=prepared, encoder=tmp / "encoder.pt", metrics=tmp / "le.json",
                                         confusion=tmp / "confusion.csv", correct=tmp / "correct.json"))
    return le


RESULT = "cpu_recipe result: "
CONFIRM_SECTION = "The CPU hour: a preset run as it is"
CONFIRM_HEADER = ("| date | preset | encoder | epochs | pretrain (min) | img/s | linear_eval (min) | val_top1_h | top1_h (test) "
                  "| kNN (test) | random init (test) | machine |\n|---|---|---|---|---|---|---|---|---|---|---|---|")


def confirm(preset: Path, prepared: Path) -> str:
    """Pretrain and linear_eval as ``preset`` says (no checkpoints kept), each timed; one table row."""
    from simclr.core.config import load_params
    from simclr.linear_eval import LinearEvalPaths, linear_eval
    from simclr.pretrain import PretrainPaths, pretrain

    params = load_params(preset).replace(**{"pretrain.checkpoint_dir": ""})
    with tempfile.TemporaryDirectory(prefix="simclr-confirm-") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        pre = pretrain(params, PretrainPaths(prepared=prepared, encoder=tmp / "encoder.pt", metrics=tmp / "pre.json",
                                             history=tmp / "history.csv"))
        pretrain_min = (time.perf_counter() - start) / 60
        print((tmp / "history.csv").read_text(), flush=True)
        start = time.perf_counter()
        le = linear_eval(params, LinearEvalPaths(prepared=prepared, encoder=tmp / "encoder.pt", metrics=tmp / "le.json",
                                                 confusion=tmp / "confusion.csv", correct=tmp / "correct.json"))
        le_min = (time.perf_counter() - start) / 60
    m = params.model
    return (f"| {today()} | `{preset.name}` | {m.encoder} w{m.width}, {params.pretrain.mixed_precision} | "
            f"{params.pretrain.epochs} | {pretrain_min:.1f} | {pre['images_per_second']:.0f} | {le_min:.1f} | "
            f"{le['val_top1_h']:.1f} | {le['top1_h']:.1f} | {le['knn_top1']:.1f} | {le['random_init_top1']:.1f} | "
            f"{machine()} |")


def in_own_process(args, name: str, epochs: int) -> dict:
    """Run one variant (``epochs`` 0: measure its images per second) in a fresh Python process."""
    proc = subprocess.run([sys.executable, __file__, "--prepared", str(args.prepared), "--variant", name,
                           "--epochs", str(epochs)], stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(next(line for line in proc.stdout.splitlines() if line.startswith(RESULT))[len(RESULT):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prepared", type=Path, required=True, help="full CIFAR-10, prepared by the prepare stage")
    ap.add_argument("--minutes", type=float, default=10.0, help="pretraining wall time per variant")
    ap.add_argument("--write", action="store_true", help="append the rows to BENCHMARKS.md")
    ap.add_argument("--only", nargs="*", help="run only these variants (their names, as in VARIANTS)")
    ap.add_argument("--confirm", type=Path, help="run this preset as it is and time it (no ranking)")
    ap.add_argument("--variant", help=argparse.SUPPRESS)  # one measurement, in a process of its own
    ap.add_argument("--epochs", type=int, default=0, help=argparse.SUPPRESS)  # 0: images per second
    args = ap.parse_args()
    from simclr.core.data import load_prepared

    train_images = len(load_prepared(args.prepared).train.y)
    if args.confirm:
        emit(CONFIRM_SECTION, CONFIRM_HEADER, [confirm(args.confirm, args.prepared)], args.write)
        return
    if args.variant:  # one measurement in this process (Accelerate fixes the precision once per process)
        changes = dict(VARIANTS)[args.variant]
        result = (run_variant(changes, args.prepared, args.epochs) if args.epochs
                  else {"images_per_second": images_per_second(changes, args.prepared)})
        print(RESULT + json.dumps(result), flush=True)
        return
    rows, where = [], machine()
    chosen = [name for name, _ in VARIANTS if not args.only or name in args.only]
    rates = {name: in_own_process(args, name, 0)["images_per_second"] for name in chosen}
    print("images per second: " + ", ".join(f"{name} {ips:.0f}" for name, ips in rates.items()), flush=True)
    for name in chosen:
        epochs = max(2, math.floor(args.minutes * 60 * rates[name] / train_images))
        r = in_own_process(args, name, epochs)
        p = r["val_top1_h"] / 100
        two_se = 200 * np.sqrt(p * (1 - p) / r["val_images"])
        rows.append(f"| {name} | {rates[name]:,.0f} | {epochs} | {r['val_top1_h']:.1f} | {two_se:.1f} | "
                    f"{r['knn_top1']:.1f} | {r['top1_h']:.1f} |")
        print(rows[-1], flush=True)
    print(f"{today()}, {where}, {args.minutes:g} minutes a variant", flush=True)
    emit(SECTION, HEADER, rows, args.write)


if __name__ == "__main__":
    main()
