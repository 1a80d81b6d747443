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
import hashlib
import io
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
from torch import nn

from simclr.atomic import torch_save_atomic, write_text_atomic
from simclr.augment import AugmentPolicy
from simclr.data import load_prepared
from simclr.errors import SimCLRError, TrainingDiverged
from simclr.evaluate import extract_features, knn_top1
from simclr.lars import LARS, param_groups
from simclr.loss import global_nt_xent_loss
from simclr.model import ModelConfig, SimCLRModel, save_encoder
from simclr.params import Params
from simclr.runtime import configure_cpu
from simclr.schedule import lr_at, scaled_lr

CHECKPOINT_NAME = "last.pt"
HISTORY_FIELDS = ("epoch", "step", "loss", "lr", "knn_top1", "images_per_second")
# Test switches (environment, so they never change a run's params or fingerprint).
ENV_KILL_AFTER_EPOCH = "SIMCLR_KILL_AFTER_EPOCH"
ENV_NAN_AT_STEP = "SIMCLR_INJECT_NAN_AT_STEP"
ENV_STALL_RANK = "SIMCLR_STALL_RANK_AT_STEP"  # "rank:step": that rank hangs before the step


@dataclass
class Outputs:
    encoder: Path = Path("models/encoder.pt")
    metrics: Path = Path("metrics/pretrain.json")
    history: Path = Path("metrics/pretrain_history.csv")
    checkpoints: Path | None = Path("checkpoints/pretrain")  # None: no per-epoch checkpoint
    prepared: Path = Path("data/prepared")


@dataclass
class RunState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps completed
    train_seconds: float = 0.0  # time in training steps, all pieces of the run
    wall_seconds: float = 0.0  # wall time of the completed epochs, all pieces
    history: list[dict] = field(default_factory=list)


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


def run_fingerprint(params: Params, data_digest: str) -> str:
    """What a checkpoint must match to be resumed: every param that changes training + the data."""
    d = params.to_dict()
    pre = {k: v for k, v in d["pretrain"].items() if k not in ("dist_timeout_seconds",)}
    chosen = {k: d[k] for k in ("temperature", "batch_size", "head", "augment", "seed", "model")}
    chosen.update(pretrain=pre, image_size=d["data"]["image_size"], data=data_digest)
    return hashlib.sha256(json.dumps(chosen, sort_keys=True, default=str).encode()).hexdigest()[:16]


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def augment_generator(device: torch.device, seed: int, epoch: int, rank: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed((seed * 1_000_003 + epoch) * 4099 + rank)


def load_checkpoint(path: Path, fingerprint: str, log) -> tuple[RunState, dict | None]:
    """Resume state if ``path`` holds a checkpoint of this exact run; otherwise a fresh start."""
    if not path.is_file():
        return RunState(), None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        log(f"checkpoint {path} is unreadable ({type(exc).__name__}); starting fresh")
        return RunState(), None
    if blob.get("fingerprint") != fingerprint:
        log(f"checkpoint {path} was written under other params or data; not resuming, starting fresh")
        return RunState(), None
    state = RunState(blob["epoch"], blob["step"], blob["train_seconds"], blob["wall_seconds"],
                     [dict(r) for r in blob["history"]])
    log(f"resuming from {path}: {state.epoch} epoch(s) done")
    return state, blob


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


def pretrain(params: Params, out: Outputs = Outputs(), *, train_images: int = 0,
             view_policies: tuple[AugmentPolicy, AugmentPolicy] | None = None) -> dict:
    """Pretrain and write ``out``; returns the metrics.

    ``train_images`` > 0 trains on a fixed seeded subset of that many images; ``view_policies``
    replaces the symmetric pair (policy, policy) built from ``params.augment`` (the augmentation
    ablation uses (identity, ops), as the paper's Figure 5).
    """
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs
    from tqdm.auto import tqdm

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
    train_x = data.train.x
    subset = train_subset(len(train_x), train_images, params.seed)
    if subset is not None:
        train_x = train_x[subset]
    n = len(train_x)
    steps_per_epoch = n // params.batch_size
    if steps_per_epoch == 0:
        raise SimCLRError(f"batch_size = {params.batch_size} is larger than the {n} training images")
    total_steps = pre.epochs * steps_per_epoch
    warmup_steps = pre.warmup_epochs * steps_per_epoch
    peak_lr = scaled_lr(pre.lr, params.batch_size, pre.lr_scaling)
    fingerprint = run_fingerprint(params, hashlib.sha256((out.prepared / "manifest.json").read_bytes()).hexdigest())
    if subset is not None or view_policies is not None:
        fingerprint = hashlib.sha256(f"{fingerprint}/{n}/{view_policies}".encode()).hexdigest()[:16]

    torch.manual_seed(params.seed)
    model = SimCLRModel(ModelConfig.from_params(params))
    if world > 1 and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # global BN (paper, Section 2.1)
    elif world > 1:
        log(f"notice: SyncBatchNorm not used on {device.type} (PyTorch supports it on CUDA only); "
            "BatchNorm statistics are per process")
    memory_format = torch.channels_last if pre.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)  # NHWC convs: 1.25x faster on this CPU (small_cnn)
    optimizer = build_optimizer(model, params, peak_lr)

    ckpt_path = out.checkpoints / CHECKPOINT_NAME if out.checkpoints else None
    state, blob = load_checkpoint(ckpt_path, fingerprint, log) if ckpt_path else (RunState(), None)
    if blob is not None:
        model.load_state_dict(blob["model"])
    model, optimizer = accelerator.prepare(model, optimizer)
    if blob is not None:
        optimizer.load_state_dict(blob["optimizer"])
    policy_1, policy_2 = view_policies or (AugmentPolicy(params.augment),) * 2
    raw_model = accelerator.unwrap_model(model)
    log(f"pretrain: {n} images, global batch {params.batch_size} ({world} x {local_batch}), "
        f"{steps_per_epoch} steps/epoch, {pre.epochs} epochs, {pre.optimizer} peak lr {peak_lr:.4g}, "
        f"device {device}, precision {pre.mixed_precision}")

    kill_after = int(os.environ.get(ENV_KILL_AFTER_EPOCH, "0"))
    nan_at = int(os.environ.get(ENV_NAN_AT_STEP, "0"))
    stall_rank, stall_step = (int(v) for v in os.environ.get(ENV_STALL_RANK, "-1:0").split(":"))
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
            if rank == stall_rank and state.step + 1 == stall_step:
                time.sleep(3600)  # fault injection: a hung rank; the others must time out
            rows = perm[i * params.batch_size + rank * local_batch : i * params.batch_size + (rank + 1) * local_batch]
            images = torch.from_numpy(train_x[rows.numpy()]).to(device, non_blocking=True)
            views = torch.cat([policy_1(images, gen), policy_2(images, gen)]).contiguous(memory_format=memory_format)
            with accelerator.autocast():
                _, z = model(views)
            loss = global_nt_xent_loss(*z.float().chunk(2), params.temperature)
            if nan_at and state.step + 1 == nan_at:
                loss = loss * float("nan")
            mean_loss = accelerator.reduce(loss.detach(), reduction="mean").item()
            if not math.isfinite(mean_loss):
                bar.close()
                raise TrainingDiverged(
                    f"loss is {mean_loss} at step {state.step + 1} (epoch {epoch + 1}); stopped. "
                    f"The last good checkpoint ({ckpt_path}, {state.epoch} epoch(s)) is kept; "
                    "lower pretrain.lr or check the data"
                )
            lr = lr_at(state.step, total_steps, warmup_steps, peak_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            loss_sum += mean_loss
            train_time += time.perf_counter() - t0
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{mean_loss:.3f}", lr=f"{lr:.3g}", refresh=False)

        knn = float("nan")
        if pre.knn_every and ((epoch + 1) % pre.knn_every == 0 or epoch + 1 == pre.epochs):
            h_train, _ = extract_features(raw_model, train_x, device)
            h_test, _ = extract_features(raw_model, data.test.x, device)
            knn = knn_top1(h_train, data.train.y if subset is None else data.train.y[subset], h_test, data.test.y, data.num_classes, pre.knn_k,
                           pre.knn_temperature)
        state.epoch = epoch + 1
        state.train_seconds += train_time
        row = {"epoch": state.epoch, "step": state.step, "loss": loss_sum / steps_per_epoch, "lr": lr,
               "knn_top1": knn, "images_per_second": steps_per_epoch * params.batch_size / train_time}
        state.history.append(row)
        state.wall_seconds += time.perf_counter() - epoch_start
        if ckpt_path:
            save_checkpoint(accelerator, raw_model, optimizer, state, fingerprint, ckpt_path)
        if accelerator.is_main_process:
            write_text_atomic(out.history, history_csv(state.history))
        if accelerator.is_local_main_process:
            bar.write(f"epoch {state.epoch}/{pre.epochs}  loss {row['loss']:.4f}  lr {lr:.4g}  "
                      f"knn_top1 {knn:.2f}  {row['images_per_second']:.0f} img/s")
        if kill_after and state.epoch == kill_after:
            accelerator.wait_for_everyone()
            os.kill(os.getpid(), signal.SIGKILL)  # fault injection: die like a preempted job
    bar.close()

    metrics = {
        "loss": state.history[-1]["loss"],
        "epochs": state.epoch,
        "images_per_second": round(state.step * params.batch_size / max(state.train_seconds, 1e-9), 2),
        "wall_seconds": round(state.wall_seconds, 2),
        "knn_top1": state.history[-1]["knn_top1"],
    }
    if accelerator.is_main_process:
        save_encoder(raw_model, out.encoder)
        write_text_atomic(out.history, history_csv(state.history))
        write_text_atomic(out.metrics, json.dumps(_json_safe(metrics), indent=2) + "\n")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return metrics


def save_checkpoint(accelerator, raw_model: nn.Module, optimizer, state: RunState, fingerprint: str,
                    path: Path) -> None:
    """The full training state after an epoch; every rank calls it, rank 0 writes atomically."""
    if accelerator.is_main_process:
        torch_save_atomic(
            {
                "fingerprint": fingerprint,
                "epoch": state.epoch,
                "step": state.step,
                "train_seconds": state.train_seconds,
                "wall_seconds": state.wall_seconds,
                "history": state.history,
                "model": raw_model.state_dict(),
                "optimizer": optimizer.state_dict(),
            },
            path,
        )
    accelerator.wait_for_everyone()


def _json_safe(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}
