"""DVC stage `pretrain`: contrastive pretraining on the prepared data -> the encoder, its metrics
and the per-epoch history. The loop is simclr.pretrain; this file is how the stage runs it.

The stage starts `pretrain.num_processes` processes itself, so `dvc exp run -S
pretrain.num_processes=8` is all a multi-GPU run needs. A process that was launched already
(torchrun, `accelerate launch --multi_gpu`, SLURM via either: `WORLD_SIZE` is set) trains as it
is. Otherwise the processes are started here, through torchrun's own launcher API, rather than
through `accelerate launch`, which reads ~/.cache/huggingface/accelerate/default_config.yaml:
nothing outside the project decides how the stage runs. Per-epoch checkpoints go to the store of
simclr.core.checkpoint, not to a DVC output.
"""

import os
import sys
from pathlib import Path

import _local_src  # noqa: F401  (before any simclr import: this checkout's src/, also in DVC's temp copies)
import typer

from simclr.core.config import load_params
from simclr.core.entry import PARAMS, PREPARED, run_stage
from simclr.core.errors import SimCLRError


def main(
    prepared: Path = PREPARED,
    encoder: Path = typer.Option(..., help="the encoder file to write"),
    metrics: Path = typer.Option(..., help="metrics JSON to write"),
    history: Path = typer.Option(..., help="per-epoch CSV to write"),
    params: Path = PARAMS,
):
    import torch

    p = load_params(params)
    n = p.pretrain.num_processes
    if n > 1 and "WORLD_SIZE" not in os.environ:
        gpus = torch.cuda.device_count()
        if gpus and n > gpus:
            raise SimCLRError(f"pretrain.num_processes = {n} but this machine has {gpus} GPU(s); one process per GPU")
        start_processes(n, sys.argv)
        return
    from simclr.pretrain import PretrainPaths, pretrain

    pretrain(p, PretrainPaths(prepared=prepared, encoder=encoder, metrics=metrics, history=history))


def start_processes(n: int, argv: list[str]) -> None:
    """``torchrun --standalone --nproc_per_node n python -u argv`` in this process; a failed
    process's exit status becomes ours, without torchrun's report on top of the worker's own
    one-line error."""
    import logging
    import uuid

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from simclr.core.runtime import usable_cores

    print(f"pretrain: starting {n} processes (torchrun --standalone --nproc_per_node {n})", flush=True)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, usable_cores() // n)))  # torchrun would say 1
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=n, run_id=str(uuid.uuid4()), rdzv_backend="c10d",
                          rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1, start_method="spawn")
    try:
        elastic_launch(config, sys.executable)("-u", *argv)
    except ChildFailedError as exc:
        code = next(iter(exc.failures.values())).exitcode
        raise SystemExit(code if code > 0 else 128 - code) from None  # killed by signal s: 128 + s, as a shell says


if __name__ == "__main__":
    run_stage(main)
