"""Wall time of the default pipeline's fanned-out stages (33 ablation points, 2 finetune fractions,
linear_eval): a serial `dvc repro` against `simclr fanout --executor local --workers 2` and
`--executor slurm` (a single-node SLURM started on this machine, as the tests start it).

    python bench/fanout_time.py            # print the rows
    python bench/fanout_time.py --write    # and append them to BENCHMARKS.md

In a fresh clone of HEAD: the upstream (prepare, pretrain) runs once, untimed. Before each
variant the run-cache is emptied and the fanned-out stages' outputs deleted, so every variant
computes every stage. A fan-out's wall counts until every result is back in the workspace
(`dvc repro -s` of the stages, served by the run-cache), the report excluded in all three.
Overhead per job: the mean job time less the mean time of a stage in the serial run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from common import ROOT, emit, machine, today  # noqa: E402

HEADER = ("| date | commit | variant | stages | wall (s) | vs serial | mean job (s) | overhead per job (s) | machine |\n"
          "|---|---|---|---|---|---|---|---|---|")


def timed(cmd: list[str], repo: Path, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def reset(repo: Path) -> None:
    """Nothing of the fanned-out stages left to serve them: no run-cache, no outputs."""
    shutil.rmtree(repo / ".dvc/cache/runs", ignore_errors=True)
    for pattern in ("metrics/ablation/*/*/*.json", "metrics/finetune/*.json", "metrics/linear_eval.json",
                    "metrics/confusion.csv"):
        for path in repo.glob(pattern):
            path.unlink()


def job_times(repo: Path) -> list[float]:
    run = sorted((repo / ".simclr/fanout").iterdir())[-1]
    recs = [json.loads(p.read_text()) for p in (run / "jobs").glob("*.json")]
    return [r["ended"] - r["started"] for r in recs]


def main(write: bool, slurm: bool) -> None:
    from simclr.fanout.plan import read_pipeline

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    simclr = [str(Path(sys.executable).parent / "simclr"), "fanout", "--no-finish"]
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
        stages = [j.stage for j in read_pipeline(repo).fanned]
        subprocess.run(["dvc", "repro", "pretrain"], cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)
        reset(repo)
        serial = timed(["dvc", "repro", "--single-item", *stages], repo, env)
        rows = [f"| {today()} | {commit} | serial `dvc repro` | {len(stages)} | {serial:.0f} | 1.00x | "
                f"{serial / len(stages):.1f} | – | {machine()} |"]

        def fanned_out(name: str, args: list[str], extra_env: dict | None = None) -> None:
            reset(repo)
            wall = timed(simclr + args, repo, {**env, **(extra_env or {})})
            wall += timed(["dvc", "repro", "--single-item", *stages], repo, env)  # back in the workspace
            jobs = job_times(repo)
            mean = sum(jobs) / len(jobs)
            rows.append(f"| {today()} | {commit} | {name} | {len(jobs)} | {wall:.0f} | {serial / wall:.2f}x | "
                        f"{mean:.1f} | {mean - serial / len(stages):+.1f} | {machine()} |")

        fanned_out("`simclr fanout --executor local --workers 2`", ["--workers", "2", "--gpus", "none"])
        if slurm:
            from slurm_cluster import missing, slurm_cluster

            if missing():
                print(f"SLURM skipped: {missing()}")
            else:
                with slurm_cluster(Path(tmp) / "slurm", cpus=2) as slurm_env:
                    fanned_out("`simclr fanout --executor slurm --cpus-per-job 1` (single-node SLURM, 2 CPUs)",
                               ["--executor", "slurm", "--cpus-per-job", "1"], {"SLURM_CONF": slurm_env["SLURM_CONF"]})
    emit("Fan-out: the default grid's independent stages side by side (`simclr fanout`)", HEADER, rows, write)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help="append the rows to BENCHMARKS.md")
    ap.add_argument("--no-slurm", action="store_true", help="leave out the SLURM variant")
    args = ap.parse_args()
    main(args.write, not args.no_slurm)
