"""DVC stage `check_params`: validate the whole params.yaml before any other stage runs.

Every other stage depends on the stamp this writes, so a typo (`temprature`) stops `dvc repro`
here with no output touched. `dvc repro` deletes a stage's outputs before running it, so what
can be checked before a stage runs is checked here, not in the stage:

* the data source (simclr.core.preflight): its folders and files are where `data` says; an npz's
  keys, image dtypes and shapes (from the array headers) and labels, including labels that make
  no dataset; an image folder's layout. Not when dvc.lock already records a prepare run with the
  same `data` params: DVC then restores data/prepared from its cache (queued and temporary
  experiments run in copies that may not hold a git-ignored source at all);
* `batch_size` against the images pretraining draws from: counted from the source (npz, image
  folder), or from the manifest of the prepared data dvc.lock records, read from DVC's cache (the
  workspace may hold another run's) when prepare will not rerun;
* the checkpoint store (`pretrain.checkpoint_dir`) can be written, when pretrain's params differ
  from dvc.lock's (the store is pretrain's alone: a cluster path must not stop a laptop's
  `dvc repro linear_eval`);
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
from simclr.core.data import check_batch_fits, images_per_split, pretraining_count
from simclr.core.entry import PARAMS, run_stage
from simclr.core.preflight import check_source
from simclr.core.store import check_store_writable
from simclr.core.tracking import check_tracker


def locked_stages(lock: Path = Path("dvc.lock")) -> dict:
    """dvc.lock's stages ({} without a readable lock)."""
    try:
        return yaml.safe_load(lock.read_text())["stages"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return {}


def unchanged_since_lock(locked: dict | None, raw: dict) -> bool:
    """Whether a stage's dvc.lock entry records the values ``raw`` (params.yaml) has now for the
    params the stage depends on (False without an entry)."""
    try:
        recorded = locked["params"]["params.yaml"]
    except (KeyError, TypeError):
        return False
    return all(recorded[key] == dotted_get(raw, key) for key in recorded)


def dotted_get(raw: dict, key: str):
    for part in key.split("."):
        if not isinstance(raw, dict) or part not in raw:
            return None
        raw = raw[part]
    return raw


def locked_prepared_images(locked: dict, prepared: Path) -> dict[str, int] | None:
    """Images per split of the prepared folder prepare's dvc.lock entry records, read from DVC's
    cache: the workspace's copy may be another run's (after a `git checkout` without
    `dvc checkout`). None where the cache does not hold it: the pretrain stage checks the count itself."""
    try:
        from dvc.repo import Repo

        oid = next(o["md5"] for o in locked["outs"] if Path(o["path"]) == prepared)
        with Repo() as repo:
            odb = repo.cache.local
            entries = json.loads(Path(odb.oid_to_path(oid)).read_text())
            manifest = next(e["md5"] for e in entries if e["relpath"] == "manifest.json")
            return images_per_split(json.loads(Path(odb.oid_to_path(manifest)).read_text()))
    except Exception:  # no cache, another DVC layout: a pre-check only, skipped
        return None


def main(params: Path = PARAMS, stamp: Path = typer.Option(None, help="file to write on success"),
         prepared: Path = typer.Option(None, help="the prepared folder: its image counts, when prepare will not rerun")):
    p = load_params(params)
    raw, locked = yaml.safe_load(params.read_text()), locked_stages()
    if unchanged_since_lock(locked.get("prepare"), raw):
        images = locked_prepared_images(locked["prepare"], prepared) if prepared else None
    else:
        images = check_source(p.data)  # None where the source does not tell without decoding
    if images is not None:
        check_batch_fits(p.batch_size, pretraining_count(images, p.data.pretrain_on, p.pretrain.train_images),
                         p.data.pretrain_on)
    if not unchanged_since_lock(locked.get("pretrain"), raw):  # the store is pretrain's alone
        check_store_writable(p.pretrain.checkpoint_dir)
    check_tracker(p.pretrain.log_with)  # a missing tracker package stops here, not after pretrain's outputs are gone
    if stamp is not None:
        write_text_atomic(stamp, "params.yaml validated\n")
    print(f"{params}: ok")


if __name__ == "__main__":
    run_stage(main)
