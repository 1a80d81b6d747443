"""DVC stage `prepare`: the configured data source (params.yaml: data) -> the prepared folder
(uint8 arrays + manifest with class names, per-class counts and each array's sha256), written
atomically. See simclr.prepare."""

from pathlib import Path

import _local_src  # noqa: F401  (before any simclr import: this checkout's src/, also in DVC's temp copies)
import typer

from simclr.core.config import load_params
from simclr.core.entry import PARAMS, run_stage
from simclr.prepare import prepare


def main(
    sample: Path = typer.Option(..., help="the embedded CIFAR-10 sample's folder (data.source: cifar10-sample)"),
    out: Path = typer.Option(..., help="the prepared folder to write"),
    params: Path = PARAMS,
):
    print(prepare(load_params(params).data, sample, out))


if __name__ == "__main__":
    run_stage(main)
