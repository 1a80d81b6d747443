"""DVC stage `check_params`: validate the whole params.yaml before any other stage runs.

Every other stage depends on the stamp this writes, so a typo (`temprature`) stops `dvc repro`
here with no output touched. It also checks that the data source's folders and files are where
`data` says (simclr.core.preflight): `dvc repro` deletes a stage's outputs before running it, so
a missing folder found by prepare itself would come after data/prepared is gone. The stamp is
fixed text: it orders the stages and nothing more; each stage depends on its own params and on
the code it runs (dvc.yaml).
"""

from pathlib import Path

import _local_src  # noqa: F401  (before any simclr import: this checkout's src/, also in DVC's temp copies)
import typer

from simclr.core.atomic import write_text_atomic
from simclr.core.config import load_params
from simclr.core.entry import PARAMS, run_stage
from simclr.core.preflight import check_source


def main(params: Path = PARAMS, stamp: Path = typer.Option(None, help="file to write on success")):
    check_source(load_params(params).data)
    if stamp is not None:
        write_text_atomic(stamp, "params.yaml validated\n")
    print(f"{params}: ok")


if __name__ == "__main__":
    run_stage(main)
