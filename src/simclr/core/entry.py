"""What every command does around its work, for ``simclr`` (the CLI) and ``stages/*.py`` (what
dvc.yaml runs): params come from ``--params`` (default params.yaml), and a
:class:`simclr.core.errors.SimCLRError` becomes one ``error: ...`` line on stderr and exit status 2,
the command's outputs left as they were.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import typer

from simclr.core.errors import SimCLRError

EXIT_USER_ERROR = 2
PARAMS = typer.Option(Path("params.yaml"), "--params", "-p", help="params file")
# The stages' paths have no default: dvc.yaml (its `paths` group) passes every one.
PREPARED = typer.Option(..., "--prepared", help="the prepared data folder (the prepare stage's output)")


def fail(message: str) -> None:
    if os.environ.get("RANK", "0") == "0":  # under torchrun/accelerate only rank 0 speaks
        print(f"error: {message}", file=sys.stderr, flush=True)
    raise typer.Exit(EXIT_USER_ERROR)


def user_errors(fn):
    """Run a command; a SimCLRError becomes one stderr line and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SimCLRError as exc:
            fail(str(exc) + restore_hint())

    return wrapper


def restore_hint() -> str:
    """Under `dvc repro` in the workspace: DVC deleted this stage's outputs before running it, and
    they stay deleted when it fails (dvc.lock still names the previous ones, which are in DVC's
    cache). The tail of the error line that says so and how to get them back; "" otherwise."""
    stage, root = os.environ.get("DVC_STAGE"), os.environ.get("DVC_ROOT")
    if not stage or not root or Path.cwd().resolve() != Path(root).resolve():
        return ""  # not DVC, or an experiment's temporary copy (the workspace is untouched)
    try:
        from dvc.repo import Repo

        with Repo(root) as repo:
            odb = repo.cache.local
            # outputs dvc.lock records whose previous version DVC's cache holds (not a first run, not gc'ed)
            outs = [str(out.def_path) for s in repo.stage.collect(stage) for out in s.outs
                    if out.use_cache and out.hash_info and out.hash_info.value and odb.exists(out.hash_info.value)]
    except Exception:  # the hint is a courtesy: never let it hide the error itself
        return ""
    gone = [o for o in outs if not Path(root, o).exists()]
    if not gone:
        return ""
    return (f" ({' and '.join(gone)} removed by dvc repro before the stage ran; "
            f"`dvc checkout {' '.join(gone)}` brings back the previous ones)")


def run_stage(main) -> None:
    """A stage's entry point: ``main``'s parameters are its command line (``--help`` lists them)."""
    typer.run(user_errors(main))
