"""DVC stage `check_params`: validate the whole params.yaml before any other stage runs.

Every other stage depends on the stamp this writes, so a typo (`temprature`) stops `dvc repro`
here with no output touched. It also checks that the data source's folders and files are where
`data` says (simclr.core.preflight) and that the tracker `pretrain.log_with` names is installed:
`dvc repro` deletes a stage's outputs before running it, so
a missing folder found by prepare itself would come after data/prepared is gone. The source is
not checked when dvc.lock already records a prepare run with the same `data` params: DVC then
restores data/prepared from its cache (queued and temporary experiments run in copies that may
not hold a git-ignored source at all). The stamp is
fixed text: it orders the stages and nothing more; each stage depends on its own params and on
the code it runs (dvc.yaml).
"""

from pathlib import Path

import _local_src  # noqa: F401  (before any simclr import: this checkout's src/, also in DVC's temp copies)
import typer
import yaml

from simclr.core.atomic import write_text_atomic
from simclr.core.config import load_params
from simclr.core.entry import PARAMS, run_stage
from simclr.core.preflight import check_source
from simclr.core.tracking import check_tracker


def prepared_before(data: dict, lock: Path = Path("dvc.lock")) -> bool:
    """Whether dvc.lock records the prepare stage run with these `data` params."""
    try:
        recorded = yaml.safe_load(lock.read_text())["stages"]["prepare"]["params"]["params.yaml"]["data"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return False
    return recorded == data


def main(params: Path = PARAMS, stamp: Path = typer.Option(None, help="file to write on success")):
    p = load_params(params)
    if not prepared_before(p.data.model_dump()):
        check_source(p.data)
    check_tracker(p.pretrain.log_with)  # a missing tracker package stops here, not after pretrain's outputs are gone
    if stamp is not None:
        write_text_atomic(stamp, "params.yaml validated\n")
    print(f"{params}: ok")


if __name__ == "__main__":
    run_stage(main)
