"""Which training-step options pay on this machine: the stage loop with each option toggled.

    python bench/step_options.py [--epochs 2] [--repeats 2] [--write]

Starts from params.yaml and times `simclr.pretrain.pretrain` (kNN off) with: the default, then
channels_last flipped, bf16 autocast, and torch.compile. Each run is a fresh process
(Accelerate's state is per process), variants alternate across repeats, and the median is
reported with the ratio against the default; the default in params.yaml should be fastest.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, emit, machine, today  # noqa: E402


def one_run(changes: dict, epochs: int) -> float:
    from loop_speed import stage_loop

    from simclr.core.config import load_params
    from simclr.core.runtime import configure_cpu

    params = load_params(ROOT / "params.yaml")
    configure_cpu(1)
    params = params.replace(**{f"pretrain.{k}": v for k, v in changes.items()})
    return stage_loop(params, epochs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps({"images_per_second": one_run(json.loads(args.one), args.epochs)}))
        return
    from simclr.core.config import load_params

    params = load_params(ROOT / "params.yaml")
    pre = params.pretrain
    variants = {
        "params.yaml default": {},
        f"channels_last={str(not pre.channels_last).lower()}": {"channels_last": not pre.channels_last},
        "mixed_precision=bf16": {"mixed_precision": "bf16"},
        "compile=true (incl. compile time)": {"compile": True},
    }
    speeds: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, changes in variants.items():
            out = subprocess.run([sys.executable, __file__, "--one", json.dumps(changes), "--epochs", str(args.epochs)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{name}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            speeds[name].append(json.loads(out.stdout.strip().splitlines()[-1])["images_per_second"])
            print(name, f"{speeds[name][-1]:.0f} img/s", flush=True)
    base = float(np.median(speeds["params.yaml default"]))
    header = "| date | variant | img/s (median) | vs default | setup | machine |\n|---|---|---|---|---|---|"
    rows = []
    for name, values in speeds.items():
        if not values:
            rows.append(f"| {today()} | {name} | failed | - | | {machine()} |")
            continue
        med = float(np.median(values))
        rows.append(f"| {today()} | {name} | {med:.0f} | {med / base:.2f}x | {params.model.encoder} w={params.model.width}, "
                    f"batch {params.batch_size}, {args.epochs} epochs, {len(values)} runs | {machine()} |")
    emit("Training-step options (`bench/step_options.py`)", header, rows, args.write)


if __name__ == "__main__":
    main()
