"""Live views of a pretraining run (``pretrain.log_with``) through Accelerate's trackers.

One row per epoch (loss, lr, kNN top-1, images/s, at step = the epoch number) goes to the
tracker named, on the main process only; ``metrics/pretrain.json`` is rewritten every epoch
whatever the tracker, so ``dvc exp show``, DVC's VS Code extension and Studio see a run while it
trains. Where each writes (git-ignored, not a DVC output: nothing a stage must reproduce):

* ``dvclive``     ``logs/dvclive/pretrain/`` (``metrics.json``, ``plots/metrics/*.tsv``). DVCLive
                  neither edits dvc.yaml (``dvcyaml=False``) nor saves experiments of its own
                  (``save_dvc_exp=False``): the pipeline's dvc.yaml and ``dvc exp run`` own those.
* ``tensorboard`` ``logs/tensorboard/pretrain-<run>/`` (``tensorboard --logdir logs/tensorboard``).
* ``wandb``       a W&B run named ``pretrain-<run>`` in the project ``simclr``, local files under ``logs/``.

``<run>`` is the start of the checkpoint fingerprint: the same configuration, data and code keep
the same name across a kill and resume. A resumed run rebuilds the tracker's history from its
checkpoint (the rows of the epochs it keeps) rather than appending to what the killed process
left: DVCLive starts its folder afresh, TensorBoard purges the events from step 1 on
(``purge_step``), so the curves equal an uninterrupted run's.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

from simclr.core.config import dotted
from simclr.core.errors import SimCLRError

LOG_DIR = Path("logs")
LOGGED = ("loss", "lr", "knn_top1", "images_per_second")
WANDB_PROJECT = "simclr"


def check_tracker(name: str) -> None:
    """Stop before training if the tracker's package is missing (check_params runs this too)."""
    if name != "none" and importlib.util.find_spec(name) is None:
        raise SimCLRError(f"pretrain.log_with = {name} needs the {name} package, which is not installed: "
                          f"pip install 'simclr-dvc[{name}]' (or set pretrain.log_with: none)")


def accelerator_options(name: str) -> dict[str, Any]:
    """The ``Accelerator(...)`` keywords that turn the tracker on."""
    if name == "none":
        return {}
    from accelerate.utils import ProjectConfiguration

    return {"log_with": name,
            "project_config": ProjectConfiguration(project_dir=str(LOG_DIR), logging_dir=str(LOG_DIR / "tensorboard"))}


def start_tracking(accelerator, name: str, run: str, config: dict, history: list[dict]) -> None:
    """Open the tracker (main process), record the config and replay ``history`` (a resumed run's epochs)."""
    if name == "none":
        return
    init_kwargs = {
        "dvclive": {"dir": str(LOG_DIR / "dvclive" / "pretrain"), "dvcyaml": False, "save_dvc_exp": False,
                    "report": None, "resume": False},
        "tensorboard": {"purge_step": 1},
        "wandb": {"dir": str(LOG_DIR), "name": f"pretrain-{run}"},
    }[name]
    # W&B takes the project name as its project (one for all runs); the others, as the run's folder
    project = WANDB_PROJECT if name == "wandb" else f"pretrain-{run}"
    try:
        accelerator.init_trackers(project, config=flat_config(config), init_kwargs={name: init_kwargs})
    except Exception as exc:  # not logged in, no network, an unwritable logs/: one line, not a traceback
        raise SimCLRError(f"pretrain.log_with = {name}: the tracker could not start ({type(exc).__name__}: {exc}); "
                          "fix that or set pretrain.log_with: none") from None
    for row in history:
        log_epoch(accelerator, row)


def log_epoch(accelerator, row: dict) -> None:
    """One epoch's row; the kNN monitor's NaN (an epoch it skipped) is left out, not logged as NaN."""
    values = {k: row[k] for k in LOGGED if not (isinstance(row[k], float) and math.isnan(row[k]))}
    accelerator.log(values, step=row["epoch"])


def flat_config(config: dict) -> dict[str, bool | int | float | str]:
    """Nested params as dotted scalar keys: TensorBoard's hparams take scalars only."""
    return {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in dotted(config).items()}
