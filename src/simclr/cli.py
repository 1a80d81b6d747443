"""``simclr``: the pipeline's commands. ``stages/*.py`` (what dvc.yaml runs) call the same functions.

Every command reads params.yaml once through ``simclr.params.load_params`` (validated before
any work) and turns a :class:`simclr.errors.SimCLRError` into one ``error: ...`` line on
stderr and exit status 2, leaving its outputs as they were (``simclr.entry``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from simclr.entry import PARAMS, user_errors
from simclr.params import load_params

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n")[0])


@app.command("check-params")
@user_errors
def check_params(params: Path = PARAMS):
    """Validate params.yaml (every key and value) and say so."""
    load_params(params)
    print(f"{params}: ok")


@app.command()
@user_errors
def prepare(params: Path = PARAMS, out: Path = typer.Option(Path("data/prepared"), help="output folder")):
    """Read the configured data source and write data/prepared/ (uint8 arrays + manifest)."""
    from simclr.data import prepare as run

    print(run(load_params(params).data, out))


@app.command()
@user_errors
def pretrain(params: Path = PARAMS):
    """Contrastive pretraining; starts pretrain.num_processes processes (torchrun) unless launched already."""
    from simclr.pretrain import launch_pretrain

    launch_pretrain(params)


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


@app.command()
@user_errors
def checkpoints(
    params: Path = PARAMS,
    remove: list[str] = typer.Option([], "--remove", help="delete this run's checkpoint (repeat the option)"),
    remove_all: bool = typer.Option(False, "--remove-all", help="delete every checkpoint not in use"),
):
    """List the pretrain checkpoint store (pretrain.checkpoint_dir): runs interrupted and not yet resumed."""
    from simclr.checkpoint import list_runs, remove_run, store_path
    from simclr.pretrain import current_fingerprint

    p = load_params(params)
    store = store_path(p.pretrain.checkpoint_dir)
    runs = list_runs(store)
    targets = [r["fingerprint"] for r in runs if not r["in_use"]] if remove_all else remove
    for fingerprint in targets:
        remove_run(store, fingerprint)
        print(f"removed {store / fingerprint}")
    if targets:
        return
    if not runs:
        print(f"{store}: no checkpoints (a run's checkpoint is removed once its outputs are written)")
        return
    print(f"{store}:")
    print("| fingerprint | epochs | updated | size | state | encoder | batch | temperature | head |")
    print("|---|---|---|---|---|---|---|---|---|")
    current = current_fingerprint(p)
    for r in runs:
        c = r.get("config", {})
        if r["in_use"]:
            state = f"training ({r.get('holder', '?')})"
        elif r["fingerprint"] == current:
            state = "interrupted; the next `dvc repro` resumes it"
        else:
            state = "interrupted; other params, data or code than the workspace's"
        print(f"| {r['fingerprint']} | {r.get('epochs_done', '?')}/{c.get('pretrain', {}).get('epochs', '?')} | "
              f"{r.get('updated', '?')} | {r['bytes'] / 1e6:.1f} MB | {state} | {c.get('model', {}).get('encoder', '?')} | "
              f"{c.get('batch_size', '?')} | {c.get('temperature', '?')} | {c.get('head', '?')} |")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
