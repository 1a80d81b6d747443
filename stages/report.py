"""DVC stage `report`: every metric, curve and ablation point -> report.md, the self-contained
index.html and figures/ in the output folder. See simclr.report."""

from pathlib import Path

import _local_src  # noqa: F401  (before any simclr import: this checkout's src/, also in DVC's temp copies)
import typer

from simclr.core.config import load_params
from simclr.core.entry import PARAMS, PREPARED, run_stage
from simclr.report import ReportPaths, build_report


def main(
    prepared: Path = PREPARED,
    pretrain_metrics: Path = typer.Option(..., help="the pretrain stage's metrics JSON"),
    history: Path = typer.Option(..., help="the pretrain stage's per-epoch CSV"),
    linear_eval: Path = typer.Option(..., help="the linear_eval stage's metrics JSON"),
    confusion: Path = typer.Option(..., help="the linear_eval stage's confusion CSV"),
    linear_eval_correct: Path = typer.Option(..., help="the linear_eval stage's per-image record (JSON)"),
    ablation: Path = typer.Option(..., help="the folder of the ablation points' metrics"),
    ablation_correct: Path = typer.Option(..., help="the folder of the ablation points' per-image records"),
    finetune: Path = typer.Option(..., help="the folder of the finetune points' metrics"),
    out: Path = typer.Option(..., help="output folder"),
    params: Path = PARAMS,
):
    paths = ReportPaths(prepared, pretrain_metrics, history, linear_eval, confusion, linear_eval_correct, ablation,
                        ablation_correct, finetune, out)
    print(f"report: {build_report(load_params(params), paths)}")


if __name__ == "__main__":
    run_stage(main)
