"""Which training-step options pay on this machine: the stage loop with each option toggled.

    python bench/step_options.py [--epochs 2] [--write]

Starts from params.yaml and times `simclr.pretrain.pretrain` (kNN off) with: the default, then
channels_last flipped, bf16 autocast, and torch.compile. The ratio is against the default in
the same process; the default in params.yaml should be the fastest row.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, append_row, machine, today  # noqa: E402
from loop_speed import stage_loop  # noqa: E402

from simclr.params import load_params  # noqa: E402
from simclr.runtime import configure_cpu  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    params = load_params(ROOT / "params.yaml")
    configure_cpu(1)
    pre = params.pretrain

    def variant(**changes):
        return dataclasses.replace(params, pretrain=dataclasses.replace(pre, **changes))

    variants = {
        "params.yaml default": params,
        f"channels_last={not pre.channels_last}": variant(channels_last=not pre.channels_last),
        "mixed_precision=bf16": variant(mixed_precision="bf16"),
        "compile=true (incl. compile time)": variant(compile=True),
    }
    base = None
    header = "| date | variant | img/s | vs default | setup | machine |\n|---|---|---|---|---|---|"
    rows = []
    for name, p in variants.items():
        speed = stage_loop(p, args.epochs)
        base = base or speed
        rows.append(f"| {today()} | {name} | {speed:.0f} | {speed / base:.2f}x | {params.model.encoder} "
                    f"w={params.model.width}, batch {params.batch_size}, {args.epochs} epochs | {machine()} |")
        print(rows[-1], flush=True)
    if args.write:
        for row in rows:
            append_row("Training-step options (`bench/step_options.py`)", header, row)


if __name__ == "__main__":
    main()
