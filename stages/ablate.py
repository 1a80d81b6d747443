"""DVC stages `ablate_<grid>@<value>`: one ablation grid point (a short pretrain of
`ablation.base` with one knob changed, then the probes) -> metrics/ablation/<grid>/<value>.json."""

from pathlib import Path

import _local_src  # noqa: F401  (before any simclr import: this checkout's src/, also in DVC's temp copies)
import typer

from simclr.ablation import parse_point, run_point
from simclr.entry import PARAMS, run_stage
from simclr.params import load_params


def main(
    kind: str = typer.Argument(..., help="grid: temperature | head | batch_size | augment"),
    value: str = typer.Argument(..., help="the point's value, e.g. 0.5, mlp, 256, crop+color"),
    params: Path = PARAMS,
):
    run_point(load_params(params), parse_point(kind, value))


if __name__ == "__main__":
    run_stage(main)
