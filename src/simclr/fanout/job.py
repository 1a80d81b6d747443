"""One fan-out job: ``python -m simclr.fanout.job <run folder> <index>``, started by an executor.

It makes a workspace of its own (a git clone of the project at the snapshot commit), and lets DVC
do the rest:

* a stage: ``dvc checkout`` (or ``dvc pull``) of the upstream outputs the stage reads,
  ``dvc repro -s`` of the upstream stages whose uncached output it reads (check_params' stamp),
  then ``dvc repro -s <stage>``. The stage's result lands in DVC's cache and run-cache: the shared
  cache folder itself, or (no shared file system) the job's own cache, pushed with
  ``dvc push --run-cache``.
* an experiment of a sweep: ``dvc exp run -S ... --name <name>`` on the whole pipeline, then
  ``dvc exp push`` to the project, so ``dvc exp show`` there lists it.

What the job saw (host, CPUs, CUDA_VISIBLE_DEVICES) and how it ended are written to
``<run>/jobs/<index>.json``: the executors read job states from there, the same way for local
processes and SLURM jobs. The workspace is deleted when the job succeeds and kept when it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from simclr.core.atomic import write_text_atomic
from simclr.core.runtime import affinity

CPUS_ENV = "SIMCLR_FANOUT_CPUS"  # the local executor's share of the cores, e.g. "0,1"


class StepFailed(Exception):
    def __init__(self, cmd: list[str], code: int):
        super().__init__(f"{' '.join(cmd)} exited with {code}")
        self.code = code


def record_path(run: Path, index: int) -> Path:
    return run / "jobs" / f"{index}.json"


def write_record(run: Path, index: int, record: dict) -> None:
    write_text_atomic(record_path(run, index), json.dumps(record, indent=2) + "\n")


def read_record(run: Path, index: int) -> dict | None:
    try:
        return json.loads(record_path(run, index).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def step(cmd: list[str], cwd: Path) -> None:
    print(f"+ {' '.join(cmd)}", flush=True)
    code = subprocess.run(cmd, cwd=cwd).returncode
    if code != 0:
        raise StepFailed(cmd, code)


def make_workspace(plan: dict, ws: Path, commit: str) -> None:
    shutil.rmtree(ws, ignore_errors=True)
    ws.parent.mkdir(parents=True, exist_ok=True)
    step(["git", "clone", "-q", "--shared", "--no-checkout", plan["project"], str(ws)], ws.parent)
    step(["git", "checkout", "-q", "--detach", commit], ws)
    # DVC's local config, as `dvc config --local` writes it (one dvc start-up less per setting)
    if plan["cache_dir"]:  # one cache for every workspace: results are shared as they are written
        config = f"[cache]\n    dir = {plan['cache_dir']}\n    type = reflink,hardlink,copy\n"
    else:  # the project's remote, at the address the workspace resolves it to (a folder remote is relative)
        name, url = plan["remote"]["name"], plan["remote"]["url"]
        config = f"[core]\n    remote = {name}\n['remote \"{name}\"']\n    url = {url}\n"
    (ws / ".dvc" / "config.local").write_text(config)


def run_stage(plan: dict, job: dict, ws: Path) -> None:
    make_workspace(plan, ws, plan["commit"])
    if job["restore"]:
        step(["dvc", "checkout" if plan["cache_dir"] else "pull", *job["restore"]], ws)
    # with --single-item DVC runs the targets in the order given: the uncached upstream first
    step(["dvc", "repro", "--single-item", *job["rerun"], job["stage"]], ws)
    if not plan["cache_dir"]:
        step(["dvc", "push", "--run-cache", job["stage"]], ws)
        push_uncached_outputs(ws, job["stage"])


def push_uncached_outputs(ws: Path, stage: str) -> None:
    """DVC pushes no uncached output, not even with ``--run-cache`` (that sends the ``runs/``
    entries and the cached outputs), so a workspace could not restore a stage with a
    ``cache: false`` metric (finetune's, linear_eval's) from the remote: it would run it again.
    When the stage ran, the run-cache committed those files to this workspace's cache; push them."""
    from dvc.repo import Repo

    with Repo(str(ws)) as repo:
        (found,) = repo.stage.collect(f"{ws / 'dvc.yaml'}:{stage}")  # a bare name is read relative to the cwd
        objs = [out.hash_info for out in found.outs if not out.use_cache and out.hash_info]
        if objs:
            repo.cloud.push(objs)
            print(f"pushed the uncached outputs of {stage}: {', '.join(o.def_path for o in found.outs if not o.use_cache)}",
                  flush=True)


def run_experiment(plan: dict, job: dict, ws: Path) -> None:
    make_workspace(plan, ws, plan["baseline"])
    # the experiment's baseline is the workspace's HEAD; its files are the workspace's as they were
    step(["git", "read-tree", "--reset", "-u", plan["commit"]], ws)
    sets = [w for a in job["set"] for w in ("-S", a)]
    step(["dvc", "exp", "run", "--name", job["name"], *sets], ws)
    push = ["dvc", "exp", "push", "origin", job["name"]]
    step(push + ["--no-cache"] if plan["cache_dir"] else push, ws)


def pin_cpus() -> list[int]:
    cpus = os.environ.get(CPUS_ENV)
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})  # inherited by dvc, the stage, torch
    return affinity()


def main(run: Path, index: int) -> int:
    plan = json.loads((run / "plan.json").read_text())
    job = plan["jobs"][index]
    # dvc, and the `python` of the stages' commands, from this interpreter's environment
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    record = {"name": job["name"], "host": socket.gethostname(), "pgid": os.getpgid(0), "cpus": pin_cpus(),
              "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
              "slurm_job": os.environ.get("SLURM_JOB_ID"), "started": time.time()}
    write_record(run, index, record)
    print(f"simclr fanout job {index}: {job['name']} on {record['host']}, CPUs {record['cpus']}, "
          f"CUDA_VISIBLE_DEVICES={record['cuda_visible_devices']}", flush=True)
    ws = run / "ws" / str(index)
    try:
        (run_stage if "stage" in job else run_experiment)(plan, job, ws)
        code = 0
    except StepFailed as exc:
        print(f"simclr fanout job {index}: {exc}; its workspace is kept: {ws}", flush=True)
        code = exc.code
    if code == 0:
        shutil.rmtree(ws, ignore_errors=True)
    write_record(run, index, {**record, "ended": time.time(), "exit": code})
    return code


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), int(sys.argv[2])))
