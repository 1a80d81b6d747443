"""``simclr fanout``: the pipeline's independent stages (or a sweep's experiments) as jobs on an
existing scheduler, their results back in the workspace through DVC's run-cache.

1. The upstream stages (check_params, prepare, pretrain) run here, with ``dvc repro``.
2. The fanned-out stages that are stale (:mod:`simclr.fanout.plan`) become one job each; a job
   reproduces its stage in a workspace of its own at a commit of this workspace as it is, so the
   stage's run-cache key is the one ``dvc repro`` here computes.
3. The joins (report) run here: ``dvc repro`` prints "Stage '...' is cached - skipping run" for
   each fanned-out stage and runs what is left.

A job that fails is named with its exit status and log; the others' results are restored all
the same, so running the command again submits only what is still missing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

from simclr.core.atomic import write_text_atomic
from simclr.core.errors import SimCLRError
from simclr.fanout.executors import DONE, FAILED, QUEUED, RUNNING, log_path
from simclr.fanout.plan import experiment_name, read_pipeline, snapshot_commit, sweep

RUNS = Path(".simclr/fanout")  # in the project: git and DVC ignore it (.gitignore, .dvcignore)


def dvc(repo: Path, *args: str, capture: bool = False) -> str:
    """A dvc command in the workspace, its output shown as it goes (or returned)."""
    cmd = [str(Path(sys.executable).parent / "dvc"), *args]
    print(f"$ dvc {' '.join(args)}", flush=True)
    proc = subprocess.run(cmd, cwd=repo, text=True, capture_output=capture)
    if proc.returncode != 0:
        detail = f": {proc.stderr.strip().splitlines()[-1]}" if capture and proc.stderr.strip() else ""
        raise SimCLRError(f"`dvc {' '.join(args)}` failed in {repo} (exit {proc.returncode}){detail}")
    return proc.stdout if capture else ""


def storage(repo: Path, through_remote: bool) -> tuple[str | None, dict | None]:
    """The shared cache folder, or the remote the jobs push to (its URL resolved as DVC does)."""
    from dvc.repo import Repo

    with Repo(str(repo)) as r:
        if not through_remote:
            return r.cache.local_cache_dir, None
        name = r.config["core"].get("remote")
        if not name:
            raise SimCLRError("--through remote needs a default DVC remote (dvc remote add -d NAME URL); "
                              f"{repo} has none")
        return None, {"name": name, "url": r.config["remote"][name]["url"]}


def stage_jobs(repo: Path, through_remote: bool) -> list[dict]:
    pipeline = read_pipeline(repo)
    if pipeline.upstream:
        dvc(repo, "repro", *pipeline.upstream)
        if through_remote:
            dvc(repo, "push", *pipeline.upstream)
    stale = set(json.loads(dvc(repo, "status", "--json", capture=True) or "{}"))
    return [{"name": j.stage, "stage": j.stage, "restore": list(j.restore), "rerun": list(j.rerun)}
            for j in pipeline.fanned if j.stage in stale]


def experiment_jobs(repo: Path, sets: list[str]) -> list[dict]:
    existing = set(dvc(repo, "exp", "list", "--name-only", capture=True).split())
    jobs = []
    for assignments in sweep(sets):
        name = experiment_name(assignments)
        if name in existing:
            print(f"experiment {name} exists already: not run again (`dvc exp remove {name}` to run it again)")
            continue
        jobs.append({"name": name, "set": list(assignments)})
    return jobs


def wait(executor, run: Path, jobs: list[dict], poll_seconds: float) -> dict:
    """Poll until every job ended, showing the count in each state: a bar on a terminal, a line
    per change otherwise (a log file, CI). A failed job is named as soon as it is seen."""
    indices, shown, reported = list(range(len(jobs))), None, set()
    bar = tqdm(total=len(jobs), unit="job", desc="fanout", file=sys.stdout, dynamic_ncols=True) \
        if sys.stdout.isatty() else None
    try:
        while True:
            states = executor.poll(indices)
            counts = {s: sum(st.state == s for st in states.values()) for s in (QUEUED, RUNNING, DONE, FAILED)}
            line = " · ".join(f"{k} {v}" for k, v in counts.items())
            for i, st in states.items():
                if st.state == FAILED and i not in reported:
                    reported.add(i)
                    (bar.write if bar else print)(failure_line(jobs[i]["name"], st.exit, log_path(run, i)))
            ended = counts[DONE] + counts[FAILED]
            if bar:
                bar.n = ended
                bar.set_postfix_str(line)
            elif line != shown:
                print(f"fanout: {ended}/{len(jobs)} ended · {line}", flush=True)
            shown = line
            if ended == len(jobs):
                return states
            time.sleep(poll_seconds)
    finally:
        if bar:
            bar.close()


def failure_line(name: str, code: int | None, log: Path) -> str:
    """The stage, its exit status, why (the stage's own `error:` line, else DVC's), its log."""
    status = f"exit {code}" if code is not None else "killed (no exit status)"
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    why = next((ln for ln in reversed(lines) if ln.startswith("error: ")), None) or \
        next((ln for ln in reversed(lines) if ln.startswith("ERROR: ")), None)
    return f"failed: {name} ({status}{'; ' + why if why else ''}), log: {log}"


def fanout(repo: Path, executor, sets: list[str] = (), through_remote: bool = False, finish: bool = True,
           poll_seconds: float = 2.0) -> int:
    """Run the fan-out; returns the number of jobs that failed."""
    repo = repo.resolve()
    if not (repo / "dvc.yaml").is_file() or not (repo / ".dvc").is_dir():
        raise SimCLRError(f"{repo} is not a DVC project (no dvc.yaml or .dvc/): run `simclr fanout` in the project")
    cache_dir, remote = storage(repo, through_remote)
    jobs = experiment_jobs(repo, list(sets)) if sets else stage_jobs(repo, through_remote)
    if not jobs:
        print("nothing to fan out: every stage is up to date" if not sets else "nothing to run: every experiment exists")
    else:
        baseline = snapshot_commit(repo)  # after the upstream stages: dvc.lock holds their results
        run = repo / RUNS / time.strftime("%Y%m%d-%H%M%S")
        run.mkdir(parents=True, exist_ok=False)
        plan = {"project": str(repo), "commit": baseline, "baseline": _head(repo), "cache_dir": cache_dir,
                "remote": remote, "jobs": jobs}
        write_text_atomic(run / "plan.json", json.dumps(plan, indent=2) + "\n")
        print(f"{len(jobs)} job(s) on {executor.describe()}; logs in {run / 'logs'}", flush=True)
        executor.submit(run, list(range(len(jobs))))
        try:
            states = wait(executor, run, jobs, poll_seconds)
        except KeyboardInterrupt:
            executor.cancel()
            raise SimCLRError(f"interrupted: the jobs were cancelled; what finished is in DVC's cache, "
                              "and running the command again submits the rest") from None
        failed = [jobs[i] for i, st in states.items() if st.state == FAILED]
        done = [jobs[i]["name"] for i, st in states.items() if st.state == DONE]
        if sets:
            print(f"{len(done)} experiment(s) pushed to this project: `dvc exp show` lists them")
        elif failed and done:
            dvc(repo, "repro", "--single-item", *(["--pull"] if through_remote else []), *done)  # restore them
        if failed:
            for j in failed:
                i = jobs.index(j)
                print(failure_line(j["name"], states[i].exit, log_path(run, i)), file=sys.stderr)
            return len(failed)
    if finish and not sets:
        dvc(repo, "repro", *(["--pull"] if through_remote else []))
    return 0


def _head(repo: Path) -> str:
    from simclr.fanout.plan import git

    return git(repo, "rev-parse", "HEAD")
