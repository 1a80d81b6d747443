"""``simclr``: the pipeline's commands. ``stages/*.py`` (what dvc.yaml runs) call these too.

Every command reads params.yaml once through ``simclr.params.load_params`` (validated before
any work) and turns a :class:`simclr.errors.SimCLRError` into one ``error: ...`` line on
stderr and exit status 2, leaving its outputs as they were.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import typer

from simclr.errors import SimCLRError
from simclr.params import load_params

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n")[0])
PARAMS = typer.Option(Path("params.yaml"), "--params", "-p", help="params file")

EXIT_USER_ERROR = 2


def _fail(message: str) -> None:
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
            _fail(str(exc))

    return wrapper


@app.command("check-params")
@user_errors
def check_params(params: Path = PARAMS, stamp: Path = typer.Option(None, help="file to write on success")):
    """Validate params.yaml; with --stamp, write a fixed marker file that later stages depend on."""
    load_params(params)
    if stamp is not None:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text("params.yaml validated\n")
    print(f"{params}: ok")


@app.command()
@user_errors
def prepare(params: Path = PARAMS, out: Path = typer.Option(Path("data/prepared"), help="output folder")):
    """Read the configured data source and write data/prepared/ (uint8 arrays + manifest)."""
    from simclr.data import load_source, write_prepared

    p = load_params(params)
    manifest = write_prepared(load_source(p.data), out)
    counts = {s: sum(c.values()) for s, c in manifest["counts"].items()}
    print(f"prepare: {p.data.source} -> {out}: {counts['train']} train, {counts['test']} test, "
          f"{len(manifest['class_names'])} classes, {manifest['image_size'][0]}x{manifest['image_size'][1]}")


@app.command()
@user_errors
def pretrain(params: Path = PARAMS):
    """Contrastive pretraining (run under `accelerate launch` or `torchrun` for several processes)."""
    from simclr.pretrain import pretrain as run

    run(load_params(params))


@app.command("linear-eval")
@user_errors
def linear_eval(params: Path = PARAMS):
    """Frozen-encoder linear probe on h and z, kNN, and the random-init baseline."""
    from simclr.linear_eval import linear_eval as run

    run(load_params(params))


@app.command()
@user_errors
def ablate(
    kind: str = typer.Argument(..., help="grid: temperature | head | batch_size | augment"),
    value: str = typer.Argument(..., help="the point's value, e.g. 0.5, mlp, 256, crop+color"),
    params: Path = PARAMS,
    out: Path = typer.Option(None, help="metrics file (default metrics/ablation/<kind>/<value>.json)"),
):
    """Pretrain and evaluate one ablation grid point (what each `ablate_<kind>@<value>` stage runs)."""
    from simclr.ablation import parse_point, run_point

    run_point(load_params(params), parse_point(kind, value), out=out)


@app.command()
@user_errors
def report(params: Path = PARAMS, out: Path = typer.Option(Path("reports"), help="output folder")):
    """Write reports/report.md, reports/index.html (self-contained) and reports/figures/."""
    from simclr.report import build_report

    path = build_report(load_params(params), out_dir=out)
    print(f"report: {path}")


@app.command()
@user_errors
def experiments(
    repo: Path = typer.Option(Path("."), help="the DVC project"),
    metrics: list[str] = typer.Option(list(("metrics/linear_eval.json", "metrics/pretrain.json")), "--metrics",
                                      help="metrics files to show (repeat the option)"),
    all_params: bool = typer.Option(False, "--all-params", help="every param, not only those that differ"),
    out: Path = typer.Option(None, help="also write the table to this Markdown file"),
):
    """Tabulate the DVC experiments of the workspace: params that differ, metrics side by side."""
    from simclr.atomic import write_text_atomic
    from simclr.experiments import dvc_exp_show, experiments_table, to_markdown

    text = to_markdown(experiments_table(dvc_exp_show(repo), tuple(metrics), all_params))
    print(text)
    if out is not None:
        write_text_atomic(out, text + "\n")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
