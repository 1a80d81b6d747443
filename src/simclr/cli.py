"""``simclr``: the tools around the pipeline (the stages themselves are ``stages/*.py``, run by dvc.yaml).

``simclr fanout`` runs the independent stages (or a sweep) as jobs on SLURM or local GPUs/cores;
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
from simclr.core.atomic import write_text_atomic
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
    from simclr.core.checkpoint import list_runs, remove_run
    from simclr.core.store import store_path
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


@app.command("params-reference")
@user_errors
def params_reference(
    write: bool = typer.Option(False, "--write", help="replace the table in docs/params.md instead of printing it"),
    page: Path = typer.Option(Path("docs/params.md"), help="the page that holds the table"),
):
    """The params reference (every key, what it allows, what it means), generated from its declaration."""
    from simclr.core.params_reference import REFERENCE_END, REFERENCE_START
    from simclr.core.params_reference import params_reference as table

    if not write:
        print(table())
        return
    if not page.is_file():
        raise SimCLRError(f"{page} does not exist; run from the project root or pass --page")
    text = page.read_text()
    if REFERENCE_START not in text or REFERENCE_END not in text:
        raise SimCLRError(f"{page} has no generated params table (its two marker lines); add them where it goes")
    head, rest = text.split(REFERENCE_START, 1)
    write_text_atomic(page, head + table() + rest.split(REFERENCE_END, 1)[1])
    print(f"wrote the params reference into {page}")


def detected_gpus() -> list[str]:
    """The GPUs a local fan-out spreads over: CUDA_VISIBLE_DEVICES where set, else nvidia-smi's."""
    import os
    import subprocess

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in visible.split(",") if g.strip()]
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return out.stdout.split() if out.returncode == 0 else []


@app.command()
@user_errors
def fanout(
    executor: str = typer.Option("local", help="local (this machine's GPUs or cores) | slurm (sbatch job array)"),
    workers: int = typer.Option(0, help="local: jobs at a time (default: one per GPU, or 1 on CPU); "
                                        "on CPU the cores are split between them"),
    gpus: str = typer.Option("auto", help="local: the GPUs, one per worker (e.g. 0,1,2,3); auto: "
                                          "CUDA_VISIBLE_DEVICES or nvidia-smi; none: CPU only"),
    partition: str = typer.Option(None, help="slurm: --partition"),
    time_limit: str = typer.Option(None, "--time", help="slurm: --time per job (minutes, or [D-]HH:MM:SS)"),
    cpus_per_job: int = typer.Option(None, help="slurm: --cpus-per-task"),
    gpus_per_job: int = typer.Option(0, help="slurm: GPUs per job (--gres=gpu:N)"),
    max_running: int = typer.Option(None, help="slurm: at most this many jobs at once (--array ...%N)"),
    sbatch_arg: list[str] = typer.Option([], help="slurm: one more sbatch option, e.g. --sbatch-arg=--account=me (repeat)"),
    through: str = typer.Option("cache", help="cache: the jobs share this project's DVC cache folder (a shared file "
                                              "system); remote: each job pushes to the default DVC remote"),
    set_param: list[str] = typer.Option([], "--set-param", "-S", help="a sweep, as dvc exp run reads it: "
                                        "key=v1,v2 (repeat for every combination); one experiment per job"),
    finish: bool = typer.Option(True, help="after the jobs, `dvc repro` here: restores every fanned-out stage "
                                           "from the run-cache and runs the rest (the report)"),
    poll_seconds: float = typer.Option(2.0, help="how often job states are read"),
):
    """Run the independent stages of the pipeline (every ablation point, finetune fraction and
    linear_eval) or the experiments of a sweep side by side, as jobs on SLURM or on this machine;
    every result comes back through DVC's run-cache (docs: docs/scaling.md#beyond-one-machine)."""
    from simclr.fanout.executors import Local, Slurm
    from simclr.fanout.run import fanout as run_fanout

    if through not in ("cache", "remote"):
        raise SimCLRError(f"--through {through!r} is not allowed; expected cache or remote")
    if executor == "local":
        devices = [] if gpus == "none" else detected_gpus() if gpus == "auto" else [g for g in gpus.split(",") if g]
        chosen = Local(workers=workers or max(1, len(devices)), gpus=devices)
    elif executor == "slurm":
        chosen = Slurm(partition=partition, time=time_limit, cpus_per_job=cpus_per_job, gpus_per_job=gpus_per_job,
                       max_running=max_running, sbatch_args=list(sbatch_arg))
    else:
        raise SimCLRError(f"--executor {executor!r} is not allowed; expected local or slurm")
    failed = run_fanout(Path("."), chosen, sets=set_param, through_remote=through == "remote", finish=finish,
                        poll_seconds=poll_seconds)
    if failed:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
