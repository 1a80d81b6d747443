"""DVC stage `linear_eval`: the frozen encoder's features -> linear probes on h and z = g(h), a
weighted kNN, and the same probe on a random-init encoder -> its metrics, the confusion table and
which test images each probe got right."""

from pathlib import Path

import _local_src  # noqa: F401  (before any simclr import: this checkout's src/, also in DVC's temp copies)
import typer

from simclr.core.config import load_params
from simclr.core.entry import PARAMS, PREPARED, run_stage
from simclr.linear_eval import LinearEvalPaths, linear_eval


def main(
    prepared: Path = PREPARED,
    encoder: Path = typer.Option(..., help="the pretrained encoder"),
    metrics: Path = typer.Option(..., help="metrics JSON to write"),
    confusion: Path = typer.Option(..., help="(actual, predicted) CSV to write"),
    correct: Path = typer.Option(..., help="JSON to write: which test images each probe got right"),
    params: Path = PARAMS,
):
    linear_eval(load_params(params), LinearEvalPaths(prepared, encoder, metrics, confusion, correct))


if __name__ == "__main__":
    run_stage(main)
