"""DVC stages `finetune@<fraction>`: at one label fraction, the pretrained network fine-tuned vs the
same network from scratch vs a linear probe, on the same labels -> its metrics file and which test
images each got right. See simclr.finetune."""

from pathlib import Path

import _local_src  # noqa: F401  (before any simclr import: this checkout's src/, also in DVC's temp copies)
import typer

from simclr.core.config import load_params
from simclr.core.entry import PARAMS, PREPARED, run_stage
from simclr.finetune import parse_fraction, run_finetune


def main(
    fraction: str = typer.Argument(..., help="the fraction of the labelled train split to use, e.g. 0.1"),
    prepared: Path = PREPARED,
    encoder: Path = typer.Option(..., help="the pretrained encoder"),
    out: Path = typer.Option(..., help="metrics JSON to write"),
    correct: Path = typer.Option(..., help="JSON to write: which test images each model got right"),
    params: Path = PARAMS,
):
    run_finetune(load_params(params), parse_fraction(fraction), prepared, encoder, out, correct)


if __name__ == "__main__":
    run_stage(main)
