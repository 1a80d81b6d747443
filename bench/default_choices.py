"""Re-check the CPU default's choices (pretrain.lr, temperature, model.width) on the validation split.

    python bench/default_choices.py [--only default "model.width"] [--write]

The default in params.yaml was tuned by test top-1 (BENCHMARKS.md, "Tuning the CPU default"). This
script trains the default and one-knob variants of it with the pipeline's own code
(`simclr.pretrain.pretrain` then `simclr.linear_eval.linear_eval`, whose probe settings are chosen
on `linear_eval.val_fraction` of the train split) on the prepared data in data/prepared. Read a
choice as holding if no variant beats it on **validation** top-1 by more than the 2 SE column (the
binomial noise of the validation split; one seed each, so training noise is not in it).
Each row also gives the test top-1 and the gain over a random-init encoder of the SAME width (the
linear_eval stage's baseline), so a narrower encoder's weaker baseline does not flatter it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, emit, machine, today  # noqa: E402

# knob changes from the default; the w=32 variant gets half the epochs: the same wall time
VARIANTS = [
    ("default", {}),
    ("pretrain.lr 2.0", {"pretrain.lr": 2.0}),
    ("pretrain.lr 8.0", {"pretrain.lr": 8.0}),
    ("temperature 0.5", {"temperature": 0.5}),
    ("model.width 32, half the epochs", {"model.width": 32, "halve_epochs": True}),
]
SECTION = "Re-checking the CPU default's choices on the validation split"
HEADER = ("| date | variant | epochs | val_top1_h | 2 SE (val) | top1_h (test) | random_init_top1 (same width) | gain "
          "| probe chosen | wall (s) | machine |\n|---|---|---|---|---|---|---|---|---|---|---|")


def run_variant(changes: dict, prepared: Path) -> tuple[dict, int, float]:
    from simclr.core.config import load_params
    from simclr.linear_eval import LinearEvalPaths, linear_eval
    from simclr.pretrain import PretrainPaths, pretrain

    params = load_params(ROOT / "params.yaml")
    changes = dict(changes)
    if changes.pop("halve_epochs", False):
        changes["pretrain.epochs"] = params.pretrain.epochs // 2
    params = params.replace(**changes, **{"pretrain.checkpoint_dir": "", "pretrain.knn_every": 0})
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="simclr-choices-") as tmp:
        tmp = Path(tmp)
        pretrain(params, PretrainPaths(prepared=prepared, encoder=tmp / "encoder.pt", metrics=tmp / "pretrain.json",
                                       history=tmp / "history.csv"))
        le = linear_eval(params, LinearEvalPaths(prepared=prepared, encoder=tmp / "encoder.pt",
                                                 metrics=tmp / "le.json", confusion=tmp / "confusion.csv"))
    return le, params.pretrain.epochs, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prepared", type=Path, default=ROOT / "data/prepared")
    ap.add_argument("--write", action="store_true", help="append the rows to BENCHMARKS.md")
    ap.add_argument("--only", nargs="*", help="run only the variants whose name starts with one of these")
    args = ap.parse_args()
    rows, where = [], machine()
    for name, changes in VARIANTS:
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        le, epochs, wall = run_variant(changes, args.prepared)
        p = le["val_top1_h"] / 100
        two_se = 200 * np.sqrt(p * (1 - p) / le["val_images"])
        rows.append(f"| {today()} | {name} | {epochs} | {le['val_top1_h']:.1f} | {two_se:.1f} | {le['top1_h']:.1f} | "
                    f"{le['random_init_top1']:.1f} | {le['gain_over_random_init']:+.1f} | {le['probe_epochs']} ep, lr "
                    f"{le['probe_lr']:g}, wd {le['probe_weight_decay']:g} | {wall:.0f} | {where} |")
        print(rows[-1], flush=True)
    emit(SECTION, HEADER, rows, args.write)


if __name__ == "__main__":
    main()
