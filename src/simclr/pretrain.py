"""The pretraining loop, top to bottom, driven by an Accelerate ``Accelerator``.

Data: the prepared uint8 arrays are memory-mapped; each epoch a seeded permutation is cut
into global batches of ``batch_size`` (the last partial batch dropped), and process r takes
rows [r*b, (r+1)*b) of each, b = batch_size / world: every image once per epoch, no padding.
Augmentation runs batched on the device (``simclr.augment``), with a generator reseeded from
(seed, epoch, rank) so an epoch's views do not depend on what ran before: that and the
per-epoch checkpoint are what make a resumed run equal an uninterrupted one.

Step: two views -> one forward over 2b images -> z all-gathered *with gradients* -> NT-Xent
in fp32 over the global batch -> LARS step with the per-step warmup+cosine lr.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
from torch import nn

from simclr.atomic import write_text_atomic
from simclr.augment import AugmentPolicy
from simclr.checkpoint import (
    CheckpointRun,
    TrainingState,
    restore_optimizer,
    run_fingerprint,
    store_path,
    training_blob,
    training_state,
)
from simclr.data import load_prepared, sha256_file
from simclr.errors import CheckpointError, SimCLRError, TrainingDiverged
from simclr.evaluate import extract_features, knn_top1
from simclr.lars import LARS, param_groups
from simclr.loss import global_nt_xent_loss
from simclr.model import ModelConfig, SimCLRModel, save_encoder
from simclr.params import Params, load_params
from simclr.runtime import configure_cpu, usable_cores
from simclr.schedule import lr_at, scaled_lr
from simclr.sources import project_imports, source_digest

HISTORY_FIELDS = ("epoch", "step", "loss", "lr", "knn_top1", "images_per_second")


@dataclass
class Outputs:
    encoder: Path = Path("models/encoder.pt")
    metrics: Path = Path("metrics/pretrain.json")
    history: Path = Path("metrics/pretrain_history.csv")
    prepared: Path = Path("data/prepared")


def build_optimizer(model: nn.Module, params: Params, peak_lr: float) -> torch.optim.Optimizer:
    p = params.pretrain
    groups = param_groups(model, p.weight_decay)
    if p.optimizer == "lars":
        return LARS(groups, lr=peak_lr, momentum=p.momentum, weight_decay=p.weight_decay,
                    trust_coefficient=p.trust_coefficient)
    for g in groups:
        g.pop("lars")
    if p.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=peak_lr, momentum=p.momentum, weight_decay=p.weight_decay)
    return torch.optim.Adam(groups, lr=peak_lr, weight_decay=p.weight_decay)


def code_digest() -> str:
    """The code that trains: this module and every project module it imports (see simclr.sources)."""
    return source_digest(project_imports(__file__))


def describe_run(params: Params, prepared: Path, world: int, device: torch.device, **extra) -> dict:
    """Everything that determines the trained weights; its hash keys the checkpoint store."""
    return {
        "config": {**params.training_config(), **extra},
        "data": sha256_file(prepared / "manifest.json"),  # the manifest holds each array's sha256
        "code": code_digest(),
        "processes": world,
        "device": device.type,
        "torch": torch.__version__,
    }


def current_fingerprint(params: Params, prepared: Path = Path("data/prepared")) -> str | None:
    """The fingerprint `pretrain` would train under now (None before the prepare stage has run)."""
    if not (prepared / "manifest.json").is_file():
        return None
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return run_fingerprint(describe_run(params, prepared, params.pretrain.num_processes, device))


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def augment_generator(device: torch.device, seed: int, epoch: int, rank: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed((seed * 1_000_003 + epoch) * 4099 + rank)


def history_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r[k] for k in HISTORY_FIELDS})
    return buf.getvalue()


def train_subset(n: int, size: int, seed: int) -> np.ndarray | None:
    """Indices of a fixed seeded subset of `size` of n training images (None: all of them)."""
    if not size or size >= n:
        return None
    return np.sort(np.random.default_rng(seed).permutation(n)[:size])


def launch_pretrain(params_path: Path = Path("params.yaml")) -> None:
    """The pretrain command: ``pretrain.num_processes`` processes, each running :func:`pretrain`.

    A process that was launched already (torchrun, ``accelerate launch --multi_gpu``, SLURM via
    either: ``WORLD_SIZE`` is set) trains as it is. Otherwise, for more than one process, this
    starts them itself (:func:`start_processes`) rather than through ``accelerate launch``, which
    reads ``~/.cache/huggingface/accelerate/default_config.yaml``: nothing outside the project
    decides how the stage runs.
    """
    params = load_params(params_path)
    n = params.pretrain.num_processes
    if n == 1 or "WORLD_SIZE" in os.environ:
        pretrain(params)
        return
    gpus = torch.cuda.device_count()
    if gpus and n > gpus:
        raise SimCLRError(f"pretrain.num_processes = {n} but this machine has {gpus} GPU(s); one process per GPU")
    start_processes(n, sys.argv)


def start_processes(n: int, argv: list[str]) -> None:
    """``torchrun --standalone --nproc_per_node n python -u argv`` in this process (torchrun's own
    launcher API); a failed process's exit status becomes ours, without torchrun's report on
    top of the worker's own one-line error."""
    import logging
    import uuid

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

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


def open_checkpoints(accelerator, params: Params, description: dict, log) -> tuple[CheckpointRun, dict | None]:
    """This run's folder in the checkpoint store, locked by the main process, and its checkpoint
    (None: a fresh start). Every rank reads it; all must find the same one."""
    from accelerate.utils import broadcast_object_list, gather_object

    run = CheckpointRun(store_path(params.pretrain.checkpoint_dir), run_fingerprint(description), description)
    refusal = [run.acquire() if accelerator.is_main_process else None]
    broadcast_object_list(refusal)  # so every rank stops, not only the one that saw the lock
    if refusal[0]:
        raise CheckpointError(refusal[0])
    blob = run.load(log)
    seen = gather_object([blob["epoch"] if blob else 0])
    if len(set(seen)) > 1:
        run.release()
        raise CheckpointError(f"the processes found different checkpoints in {run.folder} (epochs {seen}); "
                              "put pretrain.checkpoint_dir on a file system every node shares")
    return run, blob


def pretrain(params: Params, out: Outputs | None = None, *, train_images: int = 0,
             view_policies: tuple[AugmentPolicy, AugmentPolicy] | None = None, checkpoints: bool = True) -> dict:
    """Pretrain and write ``out``; returns the metrics.

    ``train_images`` > 0 trains on a fixed seeded subset of that many images; ``view_policies``
    replaces the symmetric pair (policy, policy) built from ``params.augment`` (the augmentation
    ablation uses (identity, ops), as the paper's Figure 5); ``checkpoints=False`` keeps no
    per-epoch checkpoint (the short ablation points).
    """
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs
    from tqdm.auto import tqdm

    out = out or Outputs()
    pre = params.pretrain
    accelerator = Accelerator(
        # without cpu=True Accelerate ignores a torchrun world on a machine with no GPU
        cpu=not torch.cuda.is_available(),
        mixed_precision=pre.mixed_precision,
        dynamo_backend="inductor" if pre.compile else "no",  # torch.compile, applied by prepare()
        kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=pre.dist_timeout_seconds))],
    )
    log = accelerator.print
    device, world, rank = accelerator.device, accelerator.num_processes, accelerator.process_index
    if params.batch_size % world:
        raise SimCLRError(
            f"batch_size = {params.batch_size} is not divisible by the {world} launched processes; "
            "batch_size is the global batch"
        )
    local_batch = params.batch_size // world
    if world != pre.num_processes:
        log(f"notice: pretrain.num_processes = {pre.num_processes} but {world} process(es) were launched; "
            f"the global batch stays {params.batch_size}")
    if device.type == "cpu":
        configure_cpu(int(os.environ.get("LOCAL_WORLD_SIZE", world)))

    data = load_prepared(out.prepared)
    subset = train_subset(len(data.train.x), train_images, params.seed)
    train_x = data.train.x if subset is None else data.train.x[subset]
    train_y = data.train.y if subset is None else data.train.y[subset]
    n = len(train_x)
    steps_per_epoch = n // params.batch_size
    if steps_per_epoch == 0:
        raise SimCLRError(f"batch_size = {params.batch_size} is larger than the {n} training images")
    total_steps = pre.epochs * steps_per_epoch
    warmup_steps = pre.warmup_epochs * steps_per_epoch
    peak_lr = scaled_lr(pre.lr, params.batch_size, pre.lr_scaling)

    torch.manual_seed(params.seed)
    net = SimCLRModel(ModelConfig.from_params(params))  # the module as built: what is saved and loaded
    if world > 1 and device.type == "cuda":
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)  # global BN (paper, Section 2.1)
    elif world > 1:
        log(f"notice: SyncBatchNorm not used on {device.type} (PyTorch supports it on CUDA only); "
            "BatchNorm statistics are per process")
    memory_format = torch.channels_last if pre.channels_last else torch.contiguous_format
    net = net.to(memory_format=memory_format)  # NHWC convs: 1.25x faster on this CPU (small_cnn)
    optimizer = build_optimizer(net, params, peak_lr)

    run, state, blob, bar = None, TrainingState(), None, None
    try:
        if checkpoints:
            extra = {} if subset is None and view_policies is None else {"train_images": n, "views": repr(view_policies)}
            description = describe_run(params, out.prepared, world, device, **extra)
            run, blob = open_checkpoints(accelerator, params, description, log)
        if blob is not None:
            state = training_state(blob)
            net.load_state_dict(blob["model"])
            log(f"resuming from {run.path}: {state.epoch} epoch(s) done")
        model, optimizer = accelerator.prepare(net, optimizer)  # DDP and torch.compile wrap `net`
        if blob is not None:
            restore_optimizer(blob, optimizer, accelerator.scaler)
        policy_1, policy_2 = view_policies or (AugmentPolicy(params.augment),) * 2
        log(f"pretrain: {n} images, global batch {params.batch_size} ({world} x {local_batch}), "
            f"{steps_per_epoch} steps/epoch, {pre.epochs} epochs, {pre.optimizer} peak lr {peak_lr:.4g}, "
            f"device {device}, precision {pre.mixed_precision}"
            + (f", checkpoints in {run.folder}" if run else ""))

        bar = tqdm(total=total_steps, initial=state.step, disable=not accelerator.is_local_main_process,
                   desc="pretrain", unit="step", dynamic_ncols=True,
                   mininterval=0.2 if sys.stderr.isatty() else 30)  # logs (dvc, CI) get a line per 30 s
        for epoch in range(state.epoch, pre.epochs):
            epoch_start = time.perf_counter()
            model.train()
            perm = epoch_permutation(n, params.seed, epoch)
            gen = augment_generator(device, params.seed, epoch, rank)
            loss_sum, train_time = 0.0, 0.0
            for i in range(steps_per_epoch):
                t0 = time.perf_counter()
                rows = perm[i * params.batch_size + rank * local_batch : i * params.batch_size + (rank + 1) * local_batch]
                images = torch.from_numpy(train_x[rows.numpy()]).to(device, non_blocking=True)
                views = torch.cat([policy_1(images, gen), policy_2(images, gen)]).contiguous(memory_format=memory_format)
                with accelerator.autocast():
                    _, z = model(views)
                loss = global_nt_xent_loss(*z.float().chunk(2), params.temperature)
                mean_loss = accelerator.reduce(loss.detach(), reduction="mean").item()
                where = f"at step {state.step + 1} (epoch {epoch + 1})"
                if not math.isfinite(mean_loss):
                    raise TrainingDiverged(f"loss is {mean_loss} {where}; stopped. {_kept(run, state)}")
                lr = lr_at(state.step, total_steps, warmup_steps, peak_lr)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                accelerator.backward(loss)
                grad_norm = gradient_norm(accelerator, net)
                if not math.isfinite(grad_norm) and accelerator.scaler is None:  # fp16: the scaler skips the step
                    raise TrainingDiverged(f"gradient norm is {grad_norm} {where} with a finite loss "
                                           f"({mean_loss:.4f}); stopped before the step. {_kept(run, state)}")
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                state.step += 1
                loss_sum += mean_loss
                train_time += time.perf_counter() - t0
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{mean_loss:.3f}", lr=f"{lr:.3g}", refresh=False)

            knn = float("nan")
            if pre.knn_every and ((epoch + 1) % pre.knn_every == 0 or epoch + 1 == pre.epochs):
                h_train, _ = extract_features(net, train_x, device)
                h_test, _ = extract_features(net, data.test.x, device)
                knn = knn_top1(h_train, train_y, h_test, data.test.y, data.num_classes, pre.knn_k, pre.knn_temperature)
            state.epoch = epoch + 1
            state.train_seconds += train_time
            row = {"epoch": state.epoch, "step": state.step, "loss": loss_sum / steps_per_epoch, "lr": lr,
                   "knn_top1": knn, "images_per_second": steps_per_epoch * params.batch_size / train_time}
            state.history.append(row)
            state.wall_seconds += time.perf_counter() - epoch_start
            if accelerator.is_main_process:
                if run:
                    run.save(training_blob(state, net, optimizer, accelerator.scaler))
                write_text_atomic(out.history, history_csv(state.history))
            accelerator.wait_for_everyone()
            if accelerator.is_local_main_process:
                bar.write(f"epoch {state.epoch}/{pre.epochs}  loss {row['loss']:.4f}  lr {lr:.4g}  "
                          f"knn_top1 {knn:.2f}  {row['images_per_second']:.0f} img/s")

        metrics = {
            "loss": state.history[-1]["loss"],
            "epochs": state.epoch,
            "images_per_second": round(state.step * params.batch_size / max(state.train_seconds, 1e-9), 2),
            "wall_seconds": round(state.wall_seconds, 2),
            "knn_top1": state.history[-1]["knn_top1"],
        }
        if accelerator.is_main_process:
            save_encoder(net, out.encoder)
            write_text_atomic(out.history, history_csv(state.history))
            write_text_atomic(out.metrics, json.dumps(_json_safe(metrics), indent=2) + "\n")
            if run:
                run.finish()  # DVC's cache holds the result now; `dvc repro -f` trains from epoch 1
        accelerator.wait_for_everyone()
    finally:
        if bar is not None:
            bar.close()  # before an error's one line, not after it
        if run:
            run.release()
        accelerator.end_training()  # on an error too: the process group goes down cleanly
    return metrics


def gradient_norm(accelerator, net: nn.Module) -> float:
    """The global l2 norm of the gradients (fp16: unscaled first, as the scaler's step expects)."""
    accelerator.unscale_gradients()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads).item()


def _kept(run: CheckpointRun | None, state: TrainingState) -> str:
    if run is None:  # an ablation point: no checkpoints
        return "Lower pretrain.lr or check the data"
    if state.epoch == 0:
        return "No epoch had finished, so there is no checkpoint to resume; lower pretrain.lr or check the data"
    return (f"The last good checkpoint ({run.path}, {state.epoch} epoch(s)) is kept; lower pretrain.lr or check "
            "the data, then run again to resume from it")


def _json_safe(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}
