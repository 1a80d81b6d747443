"""DVC stages `ablate_<grid>@<value>-<epochs>-<seed>`: one ablation grid point (a short pretrain of
`ablation.base` with one knob changed, at one budget and seed, then the probes) -> its metrics
file and which test images each probe got right. See simclr.ablation."""

from pathlib import Path

import _local_src  # noqa: F401  (before any simclr import: this checkout's src/, also in DVC's temp copies)
import typer

from simclr.ablation import run_point
from simclr.core.config import load_params
from simclr.core.entry import PARAMS, PREPARED, run_stage
from simclr.core.grids import GRID, parse_point


def main(
    kind: str = typer.Argument(..., help="grid: " + " | ".join(GRID)),
    value: str = typer.Argument(..., help="the point's value, e.g. 0.5, mlp, 256, crop+color"),
    epochs: int = typer.Option(..., help="pretraining epochs (one of ablation.epochs)"),
    seed: int = typer.Option(..., help="the point's seed (one of ablation.seeds)"),
    prepared: Path = PREPARED,
    out: Path = typer.Option(..., help="metrics JSON to write"),
    correct: Path = typer.Option(..., help="JSON to write: which test images each probe got right"),
    params: Path = PARAMS,
):
    run_point(load_params(params), parse_point(kind, value, epochs, seed), prepared, out, correct)


if __name__ == "__main__":
    run_stage(main)
