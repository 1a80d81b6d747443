"""DVC stage `prepare`: the configured data source -> data/prepared/ (uint8 arrays + manifest
with class names, per-class counts and each array's sha256), written atomically."""

from pathlib import Path

import _local_src  # noqa: F401  (before any simclr import: this checkout's src/, also in DVC's temp copies)
import typer

from simclr.data import prepare
from simclr.entry import PARAMS, run_stage
from simclr.params import load_params


def main(params: Path = PARAMS, out: Path = typer.Option(Path("data/prepared"), help="output folder")):
    print(prepare(load_params(params).data, out))


if __name__ == "__main__":
    run_stage(main)
