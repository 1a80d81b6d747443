"""DVC stage `check_params`: validate the whole params.yaml before any other stage runs.

Every other stage depends on the stamp this writes, so a typo (`temprature`) stops `dvc repro`
here with no output touched. `dvc repro` deletes a stage's outputs before running it, so what
can be checked before a stage runs is checked here, not in the stage:

* the data source (simclr.core.preflight): its folders and files are where `data` says; an npz's
  keys, image dtypes and shapes (from the array headers) and labels, including labels that make
  no dataset; an image folder's layout. Not when dvc.lock already records a prepare run with the
  same `data` params: DVC then restores data/prepared from its cache (queued and temporary
  experiments run in copies that may not hold a git-ignored source at all);
* `batch_size` against the images pretraining draws from (the source's count, or the prepared
  folder's manifest when prepare will not rerun);
* the checkpoint store (`pretrain.checkpoint_dir`) can be written;
* the tracker `pretrain.log_with` names is installed.

The stamp is fixed text: it orders the stages and nothing more; each stage depends on its own
params and on the code it runs (dvc.yaml).
"""

import json
from pathlib import Path

import _local_src  # noqa: F401  (before any simclr import: this checkout's src/, also in DVC's temp copies)
import typer
import yaml

from simclr.core.atomic import write_text_atomic
from simclr.core.config import load_params
from simclr.core.data import check_batch_fits, pretraining_count
from simclr.core.entry import PARAMS, run_stage
from simclr.core.preflight import check_source
from simclr.core.store import check_store_writable
from simclr.core.tracking import check_tracker


def prepared_before(data: dict, lock: Path = Path("dvc.lock")) -> bool:
    """Whether dvc.lock records the prepare stage run with these `data` params."""
    try:
        recorded = yaml.safe_load(lock.read_text())["stages"]["prepare"]["params"]["params.yaml"]["data"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return False
    return recorded == data


def prepared_images(prepared: Path | None) -> dict[str, int] | None:
    """Images per split of the prepared folder (its manifest), when it is there."""
    try:
        return dict(json.loads((prepared / "manifest.json").read_text())["images"])
    except (TypeError, OSError, ValueError, KeyError):
        return None


def main(params: Path = PARAMS, stamp: Path = typer.Option(None, help="file to write on success"),
         prepared: Path = typer.Option(None, help="the prepared folder: its image counts, when prepare will not rerun")):
    p = load_params(params)
    if prepared_before(p.data.model_dump()):
        images = prepared_images(prepared)
    else:
        images = check_source(p.data)  # None where the source does not tell without decoding
    if images is not None:
        check_batch_fits(p.batch_size, pretraining_count(images, p.data.pretrain_on, p.pretrain.train_images),
                         p.data.pretrain_on)
    check_store_writable(p.pretrain.checkpoint_dir)
    check_tracker(p.pretrain.log_with)  # a missing tracker package stops here, not after pretrain's outputs are gone
    if stamp is not None:
        write_text_atomic(stamp, "params.yaml validated\n")
    print(f"{params}: ok")


if __name__ == "__main__":
    run_stage(main)
