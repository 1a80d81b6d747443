"""The pretraining loop, top to bottom, driven by an Accelerate ``Accelerator``.

Data: the prepared uint8 arrays are memory-mapped and pretraining draws from the splits
``data.pretrain_on`` names (train, unlabeled or both, joined without a copy by
:class:`simclr.core.data.ImageRows`); the kNN monitor uses the labelled train/test splits. Each
epoch a seeded permutation is cut
into global batches of ``batch_size`` (the last partial batch dropped), and process r takes
rows [r*b, (r+1)*b) of each, b = batch_size / world: every image once per epoch, no padding.
Augmentation runs batched on the device (``simclr.core.augment``), with a generator reseeded from
(seed, epoch, rank) so an epoch's views do not depend on what ran before: that and the
per-epoch checkpoint are what make a resumed run equal an uninterrupted one.

Step: two views -> one forward over 2b images -> z all-gathered *with gradients* -> NT-Xent
in fp32 over the global batch -> LARS step with the per-step warmup+cosine lr.

Everything a run does is in ``params`` (an ablation point is a config too: ``pretrain.train_images``,
``pretrain.augment_views``), its files in :class:`PretrainPaths` (dvc.yaml writes them).
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
from torch import nn

from simclr.core.atomic import write_json_atomic, write_text_atomic
from simclr.core.augment import AugmentPolicy
from simclr.core.checkpoint import (
    CheckpointRun,
    TrainingState,
    lost_processes,
    open_checkpoints,
    restore_optimizer,
    resume,
    run_fingerprint,
    stop_if_diverged,
    training_blob,
)
from simclr.core.config import Params
from simclr.core.data import check_batch_fits, load_prepared, pretrain_images, sha256_file
from simclr.core.distributed import is_collective_failure
from simclr.core.errors import SimCLRError
from simclr.core.evaluate import extract_features, knn_top1
from simclr.core.finite_step import FiniteGuard, step_if
from simclr.core.lars import LARS, param_groups
from simclr.core.loss import global_nt_xent_loss
from simclr.core.model import ModelConfig, SimCLRModel, save_model
from simclr.core.runtime import configure_cpu, default_device
from simclr.core.schedule import lr_at, scaled_lr
from simclr.core.sources import project_imports, source_digest
from simclr.core.tracking import accelerator_options, check_tracker, log_epoch, start_tracking

HISTORY_FIELDS = ("epoch", "step", "loss", "lr", "knn_top1", "images_per_second")


@dataclass(frozen=True)
class PretrainPaths:
    prepared: Path  # input: the prepare stage's folder
    encoder: Path  # outputs
    metrics: Path
    history: Path


def pretrain(params: Params, paths: PretrainPaths) -> dict:
    """Pretrain as ``params`` says, resuming this configuration's checkpoint if there is one;
    writes ``paths`` and returns the metrics."""
    from tqdm.auto import tqdm

    pre = params.pretrain
    accelerator = make_accelerator(params)
    log, device = accelerator.print, accelerator.device
    data = load_prepared(paths.prepared)
    train_x = pretrain_images(data, params.data.pretrain_on).subset(pre.train_images, params.seed)
    check_batch_fits(params.batch_size, len(train_x), params.data.pretrain_on)  # check_params ran it too
    steps_per_epoch = len(train_x) // params.batch_size
    peak_lr = scaled_lr(pre.lr, params.batch_size, pre.lr_scaling)
    net, memory_format = build_model(params, accelerator)  # the module as built: what is saved and loaded
    optimizer = build_optimizer(net, params, peak_lr)

    run, bar, state = None, None, None
    try:
        description = describe_run(params, paths.prepared, accelerator.num_processes, device)
        if pre.checkpoint_dir:  # "" (the ablation points): none kept
            run = open_checkpoints(accelerator, params, description)
        state = resume(run, net, log)
        start_tracking(accelerator, pre.log_with, run_fingerprint(description)[:12], description["config"],
                       state.history)
        model, optimizer = accelerator.prepare(net, optimizer)  # DDP and torch.compile wrap `net`
        if run and run.blob is not None:
            restore_optimizer(run.blob, optimizer, accelerator.scaler)
        log(f"pretrain: {len(train_x)} images ({params.data.pretrain_on}), global batch {params.batch_size} ({accelerator.num_processes} x "
            f"{params.batch_size // accelerator.num_processes}), {steps_per_epoch} steps/epoch, {pre.epochs} epochs, "
            f"{pre.optimizer} peak lr {peak_lr:.4g}, device {device}, precision {pre.mixed_precision}"
            + (f", checkpoints in {run.folder}" if run else ""))
        bar = tqdm(total=pre.epochs * steps_per_epoch, initial=state.step, disable=not accelerator.is_local_main_process,
                   desc="pretrain", unit="step", dynamic_ncols=True,
                   mininterval=0.2 if sys.stderr.isatty() else 30)  # logs (dvc, CI) get a line per 30 s
        loop = RunState(accelerator, run, state, net, model, optimizer, FiniteGuard(device), paths, bar, params,
                        len(train_x))
        for epoch in range(state.epoch, pre.epochs):
            epoch_start = time.perf_counter()
            loss_sum, lr = train_epoch(loop, train_x, epoch, peak_lr, memory_format)
            loss_sum, train_time = loss_sum.item(), time.perf_counter() - epoch_start  # read: the device is done
            knn = knn_monitor(params, epoch, net, data, device)
            row = {"epoch": epoch + 1, "step": state.step, "loss": loss_sum / steps_per_epoch, "lr": lr,
                   "knn_top1": knn, "images_per_second": steps_per_epoch * params.batch_size / train_time}
            end_of_epoch(loop, row, train_time, time.perf_counter() - epoch_start)
        metrics = write_outputs(loop)
    except RuntimeError as exc:  # a peer died (connection closed) or hung (the timeout)?
        if not is_collective_failure(exc):
            raise
        raise lost_processes(exc, run, state, pre.dist_timeout_seconds) from None
    finally:
        if bar is not None:
            bar.close()  # before an error's one line, not after it
        if run is not None:
            run.release()
        accelerator.end_training()  # on an error too: the process group goes down cleanly
    return metrics


@dataclass
class RunState:
    """What the loop and its end-of-epoch bookkeeping share for one run."""

    accelerator: object
    run: CheckpointRun | None  # this configuration's checkpoint folder (None: an ablation point keeps none)
    state: TrainingState  # epochs and steps done, time, history: what a checkpoint holds
    net: nn.Module  # the module as built: what is saved and loaded
    model: nn.Module  # `net` as Accelerate wrapped it (DDP, torch.compile): what trains
    optimizer: torch.optim.Optimizer
    guard: FiniteGuard  # the first non-finite step, recorded on the device
    paths: PretrainPaths
    bar: object  # the progress bar
    params: Params
    pretrain_count: int  # the images pretraining draws from


def train_epoch(loop: RunState, train_x, epoch: int, peak_lr: float, memory_format) -> tuple[torch.Tensor, float]:
    """One epoch of steps; returns the sum of the step losses (on the device, not read) and the last lr."""
    params, accelerator, state = loop.params, loop.accelerator, loop.state
    device, rank = accelerator.device, accelerator.process_index
    local_batch = params.batch_size // accelerator.num_processes
    steps_per_epoch = len(train_x) // params.batch_size
    total_steps, warmup_steps = params.pretrain.epochs * steps_per_epoch, params.pretrain.warmup_epochs * steps_per_epoch
    policy_1, policy_2 = view_policies(params)
    loop.model.train()
    perm = epoch_permutation(len(train_x), params.seed, epoch)
    gen = augment_generator(device, params.seed, epoch, rank)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)  # read with the guard, not per step
    next_images = load_batch(train_x, perm, 0, params.batch_size, rank, local_batch, device)
    for i in range(steps_per_epoch):
        images = next_images
        views = torch.cat([policy_1(images, gen), policy_2(images, gen)]).contiguous(memory_format=memory_format)
        with accelerator.autocast():
            _, z = loop.model(views)
        loss = global_nt_xent_loss(*z.float().chunk(2), params.temperature)
        if i + 1 < steps_per_epoch:  # the host gathers the next batch while the device runs this step
            next_images = load_batch(train_x, perm, i + 1, params.batch_size, rank, local_batch, device)
        mean_loss = accelerator.reduce(loss.detach(), reduction="mean")
        lr = lr_at(state.step, total_steps, warmup_steps, peak_lr)
        for group in loop.optimizer.param_groups:
            group["lr"] = lr
        accelerator.backward(loss)
        # fp16: an overflow is the scaler's to skip (its step unscales), not a divergence
        grad_norm = gradient_norm(loop.net) if accelerator.scaler is None else torch.zeros((), device=device)
        step_if(loop.optimizer, loop.guard.check(state.step + 1, mean_loss, grad_norm))
        loop.optimizer.zero_grad(set_to_none=True)
        state.step += 1
        loss_sum += mean_loss
        if (i + 1) % params.pretrain.log_every_steps == 0 or i + 1 == steps_per_epoch:  # the host's only reads
            stop_if_diverged(loop.guard, loop.run, state, steps_per_epoch)
            loop.bar.update(state.step - loop.bar.n)
            loop.bar.set_postfix(epoch=epoch + 1, loss=f"{mean_loss.item():.3f}", lr=f"{lr:.3g}", refresh=False)
    return loss_sum, lr


# --------------------------------------------------------------------------------------------
# setup
# --------------------------------------------------------------------------------------------
def make_accelerator(params: Params):
    """The Accelerator of this run; checks the launched world against the global batch."""
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    pre = params.pretrain
    check_tracker(pre.log_with)
    accelerator = Accelerator(
        # without cpu=True Accelerate ignores a torchrun world on a machine with no GPU
        cpu=default_device().type == "cpu",
        mixed_precision=pre.mixed_precision,
        dynamo_backend="inductor" if pre.compile else "no",  # torch.compile, applied by prepare()
        kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=pre.dist_timeout_seconds))],
        **accelerator_options(pre.log_with),
    )
    world = accelerator.num_processes
    if params.batch_size % world:
        raise SimCLRError(f"batch_size = {params.batch_size} is not divisible by the {world} launched processes; "
                          "batch_size is the global batch")
    if world != pre.num_processes:
        accelerator.print(f"notice: pretrain.num_processes = {pre.num_processes} but {world} process(es) were "
                          f"launched; the global batch stays {params.batch_size}")
    if accelerator.device.type == "cpu":
        configure_cpu(int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    return accelerator


def build_model(params: Params, accelerator) -> tuple[nn.Module, torch.memory_format]:
    torch.manual_seed(params.seed)
    net = SimCLRModel(ModelConfig.from_params(params))
    world, device = accelerator.num_processes, accelerator.device
    if world > 1 and device.type == "cuda":
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)  # global BN (paper, Section 2.1)
    elif world > 1:
        accelerator.print(f"notice: SyncBatchNorm not used on {device.type} (PyTorch supports it on CUDA only); "
                          "BatchNorm statistics are per process")
    memory_format = torch.channels_last if params.pretrain.channels_last else torch.contiguous_format
    return net.to(memory_format=memory_format), memory_format  # NHWC convs: 1.25x faster on this CPU (small_cnn)


def build_optimizer(model: nn.Module, params: Params, peak_lr: float) -> torch.optim.Optimizer:
    p = params.pretrain
    groups = param_groups(model, p.weight_decay, lars=p.optimizer == "lars")
    if p.optimizer == "lars":
        return LARS(groups, lr=peak_lr, momentum=p.momentum, weight_decay=p.weight_decay,
                    trust_coefficient=p.trust_coefficient)
    if p.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=peak_lr, momentum=p.momentum, weight_decay=p.weight_decay)
    return torch.optim.Adam(groups, lr=peak_lr, weight_decay=p.weight_decay)


def view_policies(params: Params) -> tuple[AugmentPolicy, AugmentPolicy]:
    """The two views' policies: ``augment`` on both, or (``augment_views: one``, the paper's Figure 5
    ablation) the image itself on the first and ``augment`` on the second."""
    policy = AugmentPolicy(params.augment)
    return (AugmentPolicy(()), policy) if params.pretrain.augment_views == "one" else (policy, policy)


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def augment_generator(device: torch.device, seed: int, epoch: int, rank: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed((seed * 1_000_003 + epoch) * 4099 + rank)


# --------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------
def code_digest() -> str:
    """The code that trains: this module and every project module it imports (see simclr.core.sources)."""
    return source_digest(project_imports(__file__))


def describe_run(params: Params, prepared: Path, world: int, device: torch.device) -> dict:
    """Everything that determines the trained weights; its hash keys the checkpoint store."""
    return {
        "config": params.training_config(),
        "data": sha256_file(prepared / "manifest.json"),  # the manifest holds each array's sha256
        "code": code_digest(),
        "processes": world,
        "device": device.type,
        "torch": torch.__version__,
    }


def current_fingerprint(params: Params, prepared: Path) -> str | None:
    """The fingerprint `pretrain` would train under now (None before the prepare stage has run)."""
    if not (prepared / "manifest.json").is_file():
        return None
    return run_fingerprint(describe_run(params, prepared, params.pretrain.num_processes, default_device()))


# --------------------------------------------------------------------------------------------
# end of an epoch, end of the run
# --------------------------------------------------------------------------------------------
def knn_monitor(params: Params, epoch: int, net: nn.Module, data, device) -> float:
    """kNN top-1 of h (labelled train -> test) every ``pretrain.knn_every`` epochs and after the last (NaN otherwise)."""
    pre = params.pretrain
    if not pre.knn_every or ((epoch + 1) % pre.knn_every and epoch + 1 != pre.epochs):
        return float("nan")
    h_train, _ = extract_features(net, data.train.x, device)
    h_test, _ = extract_features(net, data.test.x, device)
    return knn_top1(h_train, data.train.y, h_test, data.test.y, data.num_classes, pre.knn_k, pre.knn_temperature)


def end_of_epoch(loop: RunState, row: dict, train_time: float, wall_time: float) -> None:
    """Record the epoch, checkpoint it, write the history and metrics so far and log the row (main
    process): what a live view (``dvc exp show``, a tracker) sees while the run trains."""
    accelerator, run, state, paths = loop.accelerator, loop.run, loop.state, loop.paths
    state.epoch = row["epoch"]
    state.train_seconds += train_time
    state.history.append(row)
    state.wall_seconds += wall_time
    if accelerator.is_main_process:
        write_text_atomic(paths.history, history_csv(state.history))
        write_json_atomic(paths.metrics, run_metrics(state, loop.params.batch_size, loop.pretrain_count))
        if run:
            run.save(training_blob(state, loop.net, loop.optimizer, accelerator.scaler))
    log_epoch(accelerator, row)  # a resumed run replays the rows its checkpoint keeps (simclr.core.tracking)
    accelerator.wait_for_everyone()
    if accelerator.is_local_main_process:
        loop.bar.write(f"epoch {state.epoch}/{loop.params.pretrain.epochs}  loss {row['loss']:.4f}  lr {row['lr']:.4g}  "
                  f"knn_top1 {row['knn_top1']:.2f}  {row['images_per_second']:.0f} img/s")


def write_outputs(loop: RunState) -> dict:
    accelerator, run, state, paths = loop.accelerator, loop.run, loop.state, loop.paths
    metrics = run_metrics(state, loop.params.batch_size, loop.pretrain_count)
    if accelerator.is_main_process:
        save_model(loop.net, paths.encoder)
        # end_of_epoch wrote these already, unless a resumed run's checkpoint held every epoch
        write_text_atomic(paths.history, history_csv(state.history))
        write_json_atomic(paths.metrics, metrics)
        if run:
            run.finish()  # DVC's cache holds the result now; `dvc repro -f` trains from epoch 1
    accelerator.wait_for_everyone()
    return metrics


def run_metrics(state: TrainingState, batch_size: int, pretrain_count: int) -> dict:
    """metrics/pretrain.json: the run so far (rewritten each epoch), the finished run at the end."""
    last = state.history[-1]
    measured = [r["knn_top1"] for r in state.history if math.isfinite(r["knn_top1"])]
    return {
        "loss": last["loss"],
        "epochs": state.epoch,
        "images_per_second": round(state.step * batch_size / max(state.train_seconds, 1e-9), 2),
        "wall_seconds": round(state.wall_seconds, 2),
        "knn_top1": measured[-1] if measured else float("nan"),  # the last epoch the monitor ran
        "pretrain_images": pretrain_count,
    }


def history_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r[k] for k in HISTORY_FIELDS})
    return buf.getvalue()


def gradient_norm(net: nn.Module) -> torch.Tensor:
    """The global l2 norm of the gradients, on the device."""
    return torch.nn.utils.get_total_norm([p.grad for p in net.parameters() if p.grad is not None])


def load_batch(train_x, perm: torch.Tensor, i: int, batch_size: int, rank: int, local_batch: int,
               device: torch.device) -> torch.Tensor:
    """Rows [rank*b, (rank+1)*b) of global batch ``i``, on the device. On CUDA the copy comes from
    pinned memory and does not wait: the host goes on while it runs (from pageable memory
    ``non_blocking`` does nothing)."""
    rows = perm[i * batch_size + rank * local_batch:][:local_batch]
    images = torch.from_numpy(train_x[rows.numpy()])
    if device.type == "cuda":
        images = images.pin_memory()
    return images.to(device, non_blocking=True)
