"""Where the jobs run: an existing scheduler, never one of ours.

* :class:`Local`: N processes at a time on this machine, each pinned to its own GPU
  (``CUDA_VISIBLE_DEVICES``) and its own share of the cores.
* :class:`Slurm`: one ``sbatch`` job array, one task per job (``--array 0-N%P`` caps how many run
  at once), with the partition, time limit, CPUs and GPUs (``--gres=gpu:G``) asked for. The
  script it submits is ``<run>/slurm.sh``.

Both start ``python -m simclr.fanout.job <run> <index>`` with its output in
``<run>/logs/<index>.log``. A job's state comes from its record (:mod:`simclr.fanout.job`) and
from the scheduler: queued (not started), running, done (exit 0) or failed (any other exit, or
gone from the scheduler without an exit status: killed, out of time or memory).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from simclr.core.errors import SimCLRError
from simclr.core.runtime import affinity
from simclr.fanout.job import CPUS_ENV, read_record

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


@dataclass
class State:
    state: str
    exit: int | None = None  # None: the job left no exit status (killed)


def log_path(run: Path, index: int) -> Path:
    return run / "logs" / f"{index}.log"


def job_command(run: Path, index: str) -> list[str]:
    return [sys.executable, "-m", "simclr.fanout.job", str(run), index]


def _from_record(run: Path, index: int) -> State | None:
    record = read_record(run, index)
    if record is None:
        return None
    if "exit" not in record:
        return State(RUNNING)
    return State(DONE if record["exit"] == 0 else FAILED, record["exit"])


def split_cores(cores: list[int], workers: int) -> list[list[int]]:
    """Each worker's share of the cores (the remainder to no one: every share is the same size,
    so every job runs with as many threads as the others)."""
    per = max(1, len(cores) // workers)
    return [cores[(i * per) % len(cores):(i * per) % len(cores) + per] for i in range(workers)]


@dataclass
class Local:
    workers: int
    gpus: list[str] = field(default_factory=list)  # one per worker where given
    procs: dict[int, tuple[subprocess.Popen, int]] = field(default_factory=dict)  # index -> (process, slot)
    pending: list[int] = field(default_factory=list)
    ended: dict[int, int] = field(default_factory=dict)

    def __post_init__(self):
        if self.workers < 1:
            raise SimCLRError(f"--workers {self.workers}: at least 1")
        if self.gpus and len(self.gpus) < self.workers:
            raise SimCLRError(f"--workers {self.workers} but only {len(self.gpus)} GPUs in --gpus {','.join(self.gpus)}: "
                              "one GPU per worker")
        self.cores = split_cores(affinity(), self.workers)

    def describe(self) -> str:
        where = f"GPUs {', '.join(self.gpus[:self.workers])}" if self.gpus else "CPU"
        return f"{self.workers} local worker(s) on {where}, cores {self.cores}"

    def submit(self, run: Path, indices: list[int]) -> None:
        self.run = run
        self.pending = list(indices)
        self._start_some()

    def _start_some(self) -> None:
        busy = {slot for _, slot in self.procs.values()}
        for slot in range(self.workers):
            if not self.pending:
                return
            if slot in busy:
                continue
            index = self.pending.pop(0)
            env = {**os.environ, CPUS_ENV: ",".join(map(str, self.cores[slot]))}
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot] if self.gpus else ""
            log = log_path(self.run, index)
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "w") as out:
                proc = subprocess.Popen(job_command(self.run, str(index)), stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env, start_new_session=True)
            self.procs[index] = (proc, slot)

    def poll(self, indices: list[int]) -> dict[int, State]:
        for index, (proc, _) in list(self.procs.items()):
            if proc.poll() is not None:
                self.ended[index] = proc.returncode
                del self.procs[index]
        self._start_some()
        states = {}
        for i in indices:
            if i in self.ended:
                record = _from_record(self.run, i)
                # a process killed by a signal reports -signal and wrote no exit status
                states[i] = record if record and record.state != RUNNING else State(FAILED, None)
            elif i in self.procs:
                states[i] = State(RUNNING)
            else:
                states[i] = State(QUEUED)
        return states

    def cancel(self) -> None:
        self.pending.clear()
        for proc, _ in self.procs.values():
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc, _ in self.procs.values():
            proc.wait()


@dataclass
class Slurm:
    partition: str | None = None
    time: str | None = None  # SLURM's --time: minutes, or [D-]HH:MM:SS
    cpus_per_job: int | None = None
    gpus_per_job: int = 0
    max_running: int | None = None
    sbatch_args: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return "SLURM job array (" + " ".join(self.directives([0])) + ")"

    def directives(self, indices: list[int]) -> list[str]:
        array = ",".join(map(str, indices))
        d = [f"--job-name=simclr-fanout", f"--array={array}" + (f"%{self.max_running}" if self.max_running else "")]
        if self.partition:
            d.append(f"--partition={self.partition}")
        if self.time:
            d.append(f"--time={self.time}")
        if self.cpus_per_job:
            d.append(f"--cpus-per-task={self.cpus_per_job}")
        if self.gpus_per_job:
            d.append(f"--gres=gpu:{self.gpus_per_job}")
        return d + list(self.sbatch_args)

    def script(self, run: Path, indices: list[int]) -> str:
        lines = ["#!/bin/bash", "# simclr fanout: one array task per job (its index in plan.json)"]
        lines += [f"#SBATCH {d}" for d in self.directives(indices)]
        lines += [f"#SBATCH --output={run / 'logs' / '%a.log'}", ""]
        lines.append("exec " + shlex.join(job_command(run, "X")[:-1]) + ' "$SLURM_ARRAY_TASK_ID"')
        return "\n".join(lines) + "\n"

    def _call(self, cmd: list[str]) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(cmd, capture_output=True, text=True)
        except FileNotFoundError:
            raise SimCLRError(f"{cmd[0]} is not on PATH: --executor slurm runs on a machine that submits SLURM jobs") from None

    def submit(self, run: Path, indices: list[int]) -> None:
        self.run = run
        self.gone_once: set[int] = set()
        (run / "logs").mkdir(parents=True, exist_ok=True)
        path = run / "slurm.sh"
        path.write_text(self.script(run, indices))
        proc = self._call(["sbatch", "--parsable", str(path)])
        if proc.returncode != 0:
            raise SimCLRError(f"sbatch refused {path}: {proc.stderr.strip() or proc.stdout.strip()}")
        self.job_id = proc.stdout.strip().split(";")[0]

    def poll(self, indices: list[int]) -> dict[int, State]:
        proc = self._call(["squeue", "-h", "-r", "-j", self.job_id, "-o", "%K %T"])
        # squeue forgets a job soon after it ends (MinJobAge), then calls its id invalid; any other
        # error (the controller unreachable for a moment) says nothing: None, keep waiting
        if proc.returncode == 0:
            queued = dict(line.split(maxsplit=1) for line in proc.stdout.splitlines() if line.strip())
        else:
            queued = {} if "Invalid job id" in proc.stderr else None
        states = {}
        for i in indices:
            record = _from_record(self.run, i)
            if record is not None and record.state != RUNNING:
                states[i] = record
            elif queued is not None and str(i) in queued:
                states[i] = State(QUEUED if queued[str(i)] == "PENDING" else RUNNING)
            elif queued is None:
                states[i] = record or State(QUEUED)
            elif i in self.gone_once:  # gone twice in a row with no exit status: killed, timed out
                states[i] = _from_record(self.run, i) or State(FAILED, None)
                if states[i].state == RUNNING:
                    states[i] = State(FAILED, None)
            else:
                self.gone_once.add(i)
                states[i] = record or State(QUEUED)
        return states

    def cancel(self) -> None:
        self._call(["scancel", self.job_id])
