"""Per-epoch pretraining checkpoints, kept in a store outside DVC's outputs.

DVC never run-caches a stage with a ``persist`` output (dvc/stage/cache.py), so checkpoints
are not an output of the pretrain stage. They live in a store (``pretrain.checkpoint_dir``),
one folder per *fingerprint* of the run::

    <store>/<fingerprint>/last.pt    the training state after the last finished epoch
    <store>/<fingerprint>/run.json   what the fingerprint stands for, epochs done, who trains it
    <store>/<fingerprint>/lock       flock'ed by the process that trains this fingerprint

* The fingerprint covers everything that determines the trained weights: the resolved training
  params (:meth:`simclr.core.config.Params.training_config`), the prepared data (its manifest holds
  each array's sha256), the code (:func:`simclr.core.sources.source_digest` of every project module the
  training imports; comments and formatting excluded), the number of processes, the device type
  and the torch version. Only a run with the same fingerprint resumes a checkpoint, so a resumed
  run never mixes two code versions or two configurations.
* One process trains a fingerprint at a time: a second one (another queue worker, a second
  terminal) stops with an error instead of writing the same checkpoint. The lock is an
  ``flock``, released by the kernel when its process dies, so a killed run leaves no stale lock
  (``flock`` is unreliable on some network file systems: keep the store on a local disk).
* A checkpoint serves an interrupted run only: once the stage's outputs are written the folder
  is removed. DVC's cache holds the result from then on, and ``dvc repro -f pretrain`` trains
  from epoch 1. Folders of runs that were interrupted and never resumed stay until removed:
  ``simclr checkpoints`` lists them, ``simclr checkpoints --remove`` deletes them.

A relative ``checkpoint_dir`` is taken from ``$DVC_ROOT``, which DVC sets for every stage
command: the project root, and for ``dvc exp run --queue`` / ``--temp`` the project the experiment
was started from, not its temporary copy. A queued or temporary experiment that failed therefore
resumes when it is run again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import torch

from simclr.core.atomic import torch_load_weights, torch_save_atomic, write_text_atomic
from simclr.core.config import Params
from simclr.core.errors import CheckpointError, LostProcesses, TrainingDiverged
from simclr.core.finite_step import FiniteGuard
from simclr.core.store import store_path

CHECKPOINT = "last.pt"
INFO = "run.json"
LOCK = "lock"


def run_fingerprint(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class TrainingState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps completed
    train_seconds: float = 0.0  # time in training steps, all pieces of the run
    wall_seconds: float = 0.0  # wall time of the completed epochs, all pieces
    history: list[dict] = field(default_factory=list)


def training_blob(state: TrainingState, model: torch.nn.Module, optimizer, scaler) -> dict:
    """Everything a resumed run needs to continue exactly: tensors and plain values only.

    ``model`` is the module as built, never the Accelerate/torch.compile wrapper (whose keys
    carry ``module.`` / ``_orig_mod.``); ``scaler`` is fp16's GradScaler or None.
    """
    return {
        "epoch": state.epoch,
        "step": state.step,
        "train_seconds": state.train_seconds,
        "wall_seconds": state.wall_seconds,
        "history": state.history,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
    }


def training_state(blob: dict) -> TrainingState:
    return TrainingState(blob["epoch"], blob["step"], blob["train_seconds"], blob["wall_seconds"],
                         [dict(row) for row in blob["history"]])


def restore_optimizer(blob: dict, optimizer, scaler) -> None:
    """Optimizer and fp16 scaler state; after ``accelerator.prepare`` (the state follows the params' device)."""
    optimizer.load_state_dict(blob["optimizer"])
    if scaler is not None and blob.get("scaler"):
        scaler.load_state_dict(blob["scaler"])


def _lock(path: Path, attempts: int = 1):
    """An exclusive flock on ``path``: the open file descriptor, or None while another process holds it.

    The file is removed with its run's folder while locked; a process that opened it just before
    holds a lock on a file no longer there, so the lock counts only if ``path`` is still that file.
    ``attempts`` > 1 retries for a moment (``simclr checkpoints`` takes each lock briefly to look).
    """
    for attempt in range(attempts):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            time.sleep(0.1 if attempt + 1 < attempts else 0)
            continue
        except BaseException:
            os.close(fd)
            raise
        try:
            same_file = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            return fd
        os.close(fd)
    return None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


class CheckpointRun:
    """The store folder of one fingerprint. The main process calls :meth:`acquire`, holds the lock
    for the whole run and writes; the other ranks only :meth:`load` (to resume)."""

    def __init__(self, store: Path, fingerprint: str, describe: dict):
        self.store, self.fingerprint, self.describe = store, fingerprint, describe
        self.folder = store / fingerprint
        self.path = self.folder / CHECKPOINT
        self._lock_fd: int | None = None
        self.token = uuid.uuid4().hex  # written by the main process; another process that reads it sees the same store
        self.blob: dict | None = None  # the checkpoint this run resumes (set by the caller from load())

    def acquire(self) -> str | None:
        """Main process: take the lock. None when taken, else a line naming the holder."""
        try:
            fd = _lock(self.folder / LOCK, attempts=20)
            if fd is None:
                holder = _read_json(self.folder / INFO).get("holder", "another process")
                return (f"{holder} is already training this exact configuration (checkpoint {self.folder}); "
                        "wait for it or stop it, then run again")
            self._lock_fd = fd
            self._write_info(epoch=_read_json(self.folder / INFO).get("epochs_done", 0))
        except OSError as exc:
            self.release()
            return f"the checkpoint store {self.store} is not writable ({exc.strerror}); set pretrain.checkpoint_dir"
        return None

    def sees(self, token: str) -> bool:
        """Whether this process reads the info file the main process wrote with ``token``."""
        return _read_json(self.folder / INFO).get("token") == token

    def load(self, log) -> dict | None:
        """The checkpoint of this fingerprint, or None (none yet, or unreadable: then a fresh start)."""
        if not self.path.is_file():
            return None
        try:
            blob = torch_load_weights(self.path)
        except Exception as exc:  # torch's text advises an unsafe load: never show it
            log(f"notice: checkpoint {self.path} is unreadable ({type(exc).__name__}); starting fresh")
            return None
        if not isinstance(blob, dict) or blob.get("fingerprint") != self.fingerprint:
            log(f"notice: checkpoint {self.path} belongs to another run; starting fresh")
            return None
        return blob

    def save(self, blob: dict) -> None:
        torch_save_atomic({**blob, "fingerprint": self.fingerprint}, self.path)
        self._write_info(epoch=blob["epoch"])

    def finish(self) -> None:
        """The stage's outputs are written: the checkpoint has served its purpose."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.release()

    def release(self) -> None:
        """Unlock; a folder without a checkpoint (the run failed in its first epoch) goes too."""
        if self._lock_fd is None:
            return
        if not self.path.is_file():
            shutil.rmtree(self.folder, ignore_errors=True)
        os.close(self._lock_fd)
        self._lock_fd = None

    def _write_info(self, epoch: int) -> None:
        info = {"fingerprint": self.fingerprint, **self.describe, "epochs_done": epoch,
                "updated": time.strftime("%Y-%m-%d %H:%M:%S"), "holder": f"pid {os.getpid()} on {socket.gethostname()}",
                "token": self.token}
        write_text_atomic(self.folder / INFO, json.dumps(info, indent=2, default=str) + "\n")


def list_runs(store: Path) -> list[dict]:
    """The runs in a store, newest first: run.json's fields plus ``in_use``, ``bytes`` and ``folder``."""
    runs = []
    for folder in sorted(p for p in store.glob("*") if p.is_dir()) if store.is_dir() else []:
        info = _read_json(folder / INFO) or {"fingerprint": folder.name}
        try:
            fd = _lock(folder / LOCK)
        except OSError:  # a store this user may read but not lock: say nothing about use
            fd, in_use = None, None
        else:
            in_use = fd is None
        if fd is not None:
            os.close(fd)
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        runs.append({**info, "in_use": in_use, "bytes": size, "folder": folder})
    return sorted(runs, key=lambda r: r.get("updated", ""), reverse=True)


def remove_run(store: Path, fingerprint: str) -> None:
    folder = store / fingerprint
    if not folder.is_dir() or folder.parent != store:
        raise CheckpointError(f"{folder} is not a run in the checkpoint store; `simclr checkpoints` lists them")
    try:
        fd = _lock(folder / LOCK)
        if fd is None:
            raise CheckpointError(f"{folder} is in use by a running pretrain; stop it first")
        try:
            shutil.rmtree(folder)
        finally:
            os.close(fd)
    except OSError as exc:
        raise CheckpointError(f"{folder} cannot be removed ({exc.strerror})") from None


# --------------------------------------------------------------------------------------------
# a run's checkpoints: opened by every process, resumed, and named in the one line a stopped run prints
# --------------------------------------------------------------------------------------------
NOT_APPLIED = "Neither that step nor a later one was applied."


def open_checkpoints(accelerator, params: Params, description: dict) -> CheckpointRun:
    """This run's folder in the checkpoint store, locked by the main process, with its checkpoint
    loaded (``run.blob``; None: a fresh start). Every rank reads it; all must find the same one."""
    from accelerate.utils import broadcast_object_list, gather_object

    run = CheckpointRun(store_path(params.pretrain.checkpoint_dir), run_fingerprint(description), description)
    refusal = [run.acquire() if accelerator.is_main_process else None, run.token]
    broadcast_object_list(refusal)  # so every rank stops, not only the one that saw the lock
    if refusal[0]:
        raise CheckpointError(refusal[0])
    blind = [who for who, sees in gather_object([(f"process {accelerator.process_index} on {socket.gethostname()}",
                                                  run.sees(refusal[1]))]) if not sees]
    if blind:  # a node with its own store would resume from a checkpoint the others do not have
        run.release()
        raise CheckpointError(f"{', '.join(blind)} cannot see the checkpoint store {run.folder} that process 0 writes; "
                              "put pretrain.checkpoint_dir on a file system every node shares")
    run.blob = run.load(accelerator.print)
    seen = gather_object([run.blob["epoch"] if run.blob else 0])
    if len(set(seen)) > 1:
        run.release()
        raise CheckpointError(f"the processes found different checkpoints in {run.folder} (epochs {seen}); "
                              "put pretrain.checkpoint_dir on a file system every node shares")
    return run


def resume(run: CheckpointRun | None, net: torch.nn.Module, log) -> TrainingState:
    if run is None or run.blob is None:
        return TrainingState()
    net.load_state_dict(run.blob["model"])
    log(f"resuming from {run.path}: {run.blob['epoch']} epoch(s) done")
    return training_state(run.blob)


def stop_if_diverged(guard: FiniteGuard, run: CheckpointRun | None, state: TrainingState, steps_per_epoch: int) -> None:
    """Read the guard (a host read-back); a bad step stops the run, naming the first one."""
    bad = guard.read()
    if bad is None:
        return
    step, loss, grad_norm = bad
    where = f"at step {step} (epoch {(step - 1) // steps_per_epoch + 1})"
    if not math.isfinite(loss):
        raise TrainingDiverged(f"loss is {loss} {where}; stopped. {NOT_APPLIED} {_kept(run, state)}")
    raise TrainingDiverged(f"gradient norm is {grad_norm} {where} with a finite loss ({loss:.4f}); stopped. "
                           f"{NOT_APPLIED} {_kept(run, state)}")


def lost_processes(exc: Exception, run: CheckpointRun | None, state: TrainingState | None,
                   timeout: int) -> LostProcesses:
    """The one line for a collective that failed: which step, the backend's own reason, what is kept."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", " ".join(str(exc).split()))  # gloo prefixes its source file: [pair.cc:561]
    reason = text.split(". ")[0] or type(exc).__name__
    where = f" at step {state.step + 1} (epoch {state.epoch + 1})" if state else ""
    return LostProcesses(f"lost contact with the other processes{where}: one of them stopped, or did not answer within "
                         f"pretrain.dist_timeout_seconds ({timeout} s) ({reason[:160]}). "
                         + _kept(run, state or TrainingState(), fix="see each node's log", again="start every node again"))


def _kept(run: CheckpointRun | None, state: TrainingState, fix: str = "lower pretrain.lr or check the data",
          again: str = "run again") -> str:
    """What a stopped run leaves to resume from, and what to do."""
    if run is None:  # an ablation point: no checkpoints
        return fix[0].upper() + fix[1:]
    if state.epoch == 0:
        return f"No epoch had finished, so there is no checkpoint to resume; {fix}"
    return f"The last good checkpoint ({run.path}, {state.epoch} epoch(s)) is kept; {fix}, then {again} to resume from it"
