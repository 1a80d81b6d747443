"""``simclr``: the tools around the pipeline (the stages themselves are ``stages/*.py``, run by dvc.yaml).

``simclr experiments`` compares DVC experiments; ``simclr checkpoints`` lists and removes the
pretrain checkpoints of interrupted runs; ``simclr export`` writes the encoder f as safetensors.
A :class:`simclr.core.errors.SimCLRError` becomes one ``error: ...`` line on stderr and exit
status 2 (``simclr.core.entry``).
"""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from simclr import __version__
from simclr.core.config import load_params
from simclr.core.entry import PARAMS, user_errors
from simclr.core.errors import SimCLRError

HELP = "The tools around the SimCLR pipeline (the stages themselves are stages/*.py, run by dvc.yaml)."
app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)


def _print_version(value: bool) -> None:
    if value:
        print(f"simclr {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                          help="print the version and exit")) -> None:
    pass


def dvc_paths(repo: Path = Path(".")) -> dict[str, Path]:
    """The ``paths`` of dvc.yaml's ``vars``: where the stages read and write (written there only)."""
    try:
        spec = yaml.safe_load((repo / "dvc.yaml").read_text())
        (paths,) = [v["paths"] for v in spec["vars"] if isinstance(v, dict) and "paths" in v]
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        raise SimCLRError(f"{repo / 'dvc.yaml'} cannot be read or has no `vars: - paths:` group; run in the project") from None
    return {name: repo / path for name, path in paths.items()}


@app.command()
@user_errors
def experiments(
    repo: Path = typer.Option(Path("."), help="the DVC project"),
    metrics: list[str] = typer.Option([], "--metrics",
                                      help="metrics files to show (repeat; default: pretrain's and linear_eval's)"),
    all_params: bool = typer.Option(False, "--all-params", help="every param, not only those that differ"),
    out: Path = typer.Option(None, help="also write the table to this Markdown file"),
):
    """Tabulate the DVC experiments of the workspace: params that differ, metrics side by side."""
    from simclr.core.atomic import write_text_atomic
    from simclr.report.experiments import dvc_exp_show, experiments_table, metric_keys
    from simclr.report.render import markdown_table

    if not metrics:
        paths = dvc_paths(repo)
        metrics = [paths[k].relative_to(repo).as_posix() for k in ("linear_eval_metrics", "pretrain_metrics")]
    text = markdown_table(experiments_table(dvc_exp_show(repo), metric_keys(repo, tuple(metrics)), all_params))
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
    from simclr.core.checkpoint import list_runs, remove_run, store_path
    from simclr.pretrain import current_fingerprint

    p = load_params(params)
    if not p.pretrain.checkpoint_dir:
        print('pretrain.checkpoint_dir is "": no checkpoints are kept')
        return
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
    current = current_fingerprint(p, dvc_paths()["prepared"])  # before printing: an error is one line
    print(f"{store}:")
    print("| fingerprint | epochs | updated | size | state | encoder | batch | temperature | head |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        c = r.get("config", {})
        if r["in_use"]:
            state = f"training ({r.get('holder', '?')})"
        elif r["fingerprint"] == current:
            state = "interrupted; the next `dvc repro` resumes it"
        else:
            state = "interrupted; other params, data or code than the workspace's"
        print(f"| {r['fingerprint']} | {r.get('epochs_done', '?')}/{c.get('pretrain.epochs', '?')} | "
              f"{r.get('updated', '?')} | {r['bytes'] / 1e6:.1f} MB | {state} | {c.get('model', {}).get('encoder', '?')} | "
              f"{c.get('batch_size', '?')} | {c.get('temperature', '?')} | {c.get('head', '?')} |")


@app.command()
@user_errors
def export(
    encoder: Path = typer.Argument(Path("models/encoder.pt"), help="the pretrained encoder file (pretrain's output)"),
    out: Path = typer.Argument(Path("models/encoder.safetensors"), help="the safetensors file to write"),
):
    """Write the encoder f as a safetensors state dict that torch and torchvision load without this package.

    Not the head g. Input: float RGB NCHW in [0, 1] (uint8 / 255), no mean/std normalisation.

    Keys: torchvision's for the ResNets (no fc.*), features.<i>.* for small_cnn; the metadata says how to rebuild f.
    """
    from simclr.export import export_encoder

    meta = export_encoder(encoder, out)
    print(f"wrote {out}: encoder f of {encoder} ({meta['encoder']}, {meta['feature_dim']}-d features h)")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
