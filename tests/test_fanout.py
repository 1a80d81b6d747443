"""`simclr fanout`, proved with the real parts: DVC's DAG and run-cache, local worker processes, a
real single-node SLURM (tests/slurm_cluster.py) and the default folder remote.

The reference every fanned-out result is held to is a serial `dvc repro` of the same project. On
a CPU the number of threads changes the last bits of PyTorch's reductions, so each stage of the
reference runs with the cores it has under `simclr fanout`: the upstream (pretrain) with both, in
the workspace; the fanned-out stages with one (`taskset -c 0`), as each job here has (two local
workers on two cores get one core each; the SLURM jobs ask for `--cpus-per-task 1`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from support import BIN, ROOT, git_identity_env, init_dvc_repo, run

from simclr.core.config import load_params
from simclr.core.errors import SimCLRError
from simclr.core.grids import grid_points
from simclr.fanout.executors import Slurm, split_cores
from simclr.fanout.plan import experiment_name, read_pipeline, sweep

TIMINGS = ("wall_seconds", "images_per_second")
FANNED = ["ablate_head@mlp-1-0", "finetune@0.25", "linear_eval"]  # of the small grid below
ONE_CORE = ["taskset", "-c", "0"]


# --- what fans out, read from the DAG ---------------------------------------------------------------

def test_the_dag_splits_into_upstream_fanned_out_stages_and_joins():
    pipeline = read_pipeline(ROOT)
    params = load_params(ROOT / "params.yaml")
    assert pipeline.upstream == ("check_params", "prepare", "pretrain")
    assert {j.stage for j in pipeline.fanned} == {p.stage for p in grid_points(params)} | {
        f"finetune@{f}" for f in params.finetune.label_fractions} | {"linear_eval"}
    assert pipeline.joins == ("report",)
    jobs = {j.stage: j for j in pipeline.fanned}
    # the outputs a job checks out, and check_params' uncached stamp, which it makes again
    assert jobs["linear_eval"].restore == ("prepare", "pretrain") and jobs["linear_eval"].rerun == ("check_params",)
    point = grid_points(params)[0].stage
    assert jobs[point].restore == ("prepare",) and jobs[point].rerun == ("check_params",)


def test_a_sweep_reads_s_as_dvc_exp_run_does():
    assert sweep(["temperature=0.1,0.5", "head=mlp,linear"]) == [
        ("temperature=0.1", "head=mlp"), ("temperature=0.1", "head=linear"),
        ("temperature=0.5", "head=mlp"), ("temperature=0.5", "head=linear")]
    assert experiment_name(("temperature=0.5", "pretrain.lr=2")) == "temperature-0.5_pretrain.lr-2"
    for bad in ("temperature", "=0.5", "temperature="):
        with pytest.raises(SimCLRError, match="is not key=value"):
            sweep([bad])


def test_local_workers_split_the_cores_evenly():
    assert split_cores([0, 1, 2, 3], 2) == [[0, 1], [2, 3]]
    assert split_cores([0, 1, 2, 3, 4], 2) == [[0, 1], [2, 3]]
    assert split_cores([0, 1], 2) == [[0], [1]]
    assert split_cores([0], 2) == [[0], [0]]  # more workers than cores: they share


def test_the_slurm_script_carries_what_was_asked(tmp_path):
    script = Slurm(partition="gpu", time="2:00:00", cpus_per_job=8, gpus_per_job=1, max_running=4,
                   sbatch_args=["--account=lab"]).script(tmp_path, [0, 1, 5])
    for line in ("#SBATCH --array=0,1,5%4", "#SBATCH --partition=gpu", "#SBATCH --time=2:00:00",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --gres=gpu:1", "#SBATCH --account=lab",
                 f"#SBATCH --output={tmp_path}/logs/%a.log"):
        assert line in script.splitlines()
    assert script.rstrip().endswith(f'-m simclr.fanout.job {tmp_path} "$SLURM_ARRAY_TASK_ID"')


def test_bad_options_are_one_line(tmp_path):
    for args, fragment in ((["--executor", "kubernetes"], "--executor 'kubernetes' is not allowed"),
                           (["--through", "s3"], "--through 's3' is not allowed"),
                           (["--workers", "3", "--gpus", "0,1"], "--workers 3 but only 2 GPUs")):
        proc = run([str(BIN / "simclr"), "fanout", *args], tmp_path, check=False)
        assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [f"error: {proc.stderr.strip()[7:]}"]
        assert fragment in proc.stderr
    proc = run([str(BIN / "simclr"), "fanout"], tmp_path, check=False)
    assert proc.returncode == 2 and "is not a DVC project" in proc.stderr


# --- end to end ---------------------------------------------------------------------------------------

def small_grid(raw: dict, **ablation) -> dict:
    """The tests' tiny params with one ablation point: three stages fan out (FANNED)."""
    raw["ablation"].update({"temperatures": [], "heads": ["mlp"], "batch_sizes": [], "augment_pairs": [], **ablation})
    return raw


def small_repo(path: Path, **ablation) -> tuple[Path, dict]:
    repo, env = init_dvc_repo(path)
    raw = small_grid(yaml.safe_load((repo / "params.yaml").read_text()), **ablation)
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    run(["git", "commit", "-qam", "a small grid"], repo, env)
    return repo, env


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The reference: the small project reproduced by plain `dvc repro`, the upstream on both cores,
    the rest on one."""
    repo, env = small_repo(tmp_path_factory.mktemp("serial"))
    run(["dvc", "repro", "pretrain"], repo, env)
    run(ONE_CORE + ["dvc", "repro"], repo, env)
    return repo


def results(repo: Path) -> dict:
    """Every metrics file the fanned-out stages and pretrain wrote, timings left out."""
    out = {}
    for path in sorted((repo / "metrics").rglob("*.json")):
        m = json.loads(path.read_text())
        out[path.relative_to(repo).as_posix()] = {k: v for k, v in m.items() if k not in TIMINGS}
    return out


def lock_keys(repo: Path) -> dict:
    """What DVC's run-cache key is made of, per fanned-out stage: cmd, deps, params."""
    stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {s: {k: stages[s][k] for k in ("cmd", "deps", "params")} for s in FANNED}


def fanout(repo: Path, env: dict, *args: str, check: bool = True, timeout: int = 600):
    return run([str(BIN / "simclr"), "fanout", "--poll-seconds", "0.3", *args], repo, env, check=check,
               timeout=timeout)


def runs(repo: Path) -> list[Path]:
    return sorted((repo / ".simclr/fanout").iterdir())


def records(run_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((run_dir / "jobs").glob("*.json"))]


def overlapped(recs: list[dict]) -> bool:
    """Whether two jobs ran at the same time."""
    return any(a["started"] < b["ended"] and b["started"] < a["ended"] for a in recs for b in recs if a is not b)


def restored_from_run_cache(out: str) -> bool:
    return all(f"Stage '{s}' is cached - skipping run" in out and f"Running stage '{s}'" not in out for s in FANNED) \
        and "Running stage 'report'" in out


@pytest.mark.slow
def test_local_workers_one_gpu_each_and_results_bit_identical_to_serial(tmp_path, serial):
    repo, env = small_repo(tmp_path)
    out = fanout(repo, env, "--workers", "2", "--gpus", "0,1").stdout
    assert restored_from_run_cache(out)
    assert "Running stage 'pretrain'" in out  # the upstream ran here first
    (run_dir,) = runs(repo)
    recs = records(run_dir)
    assert sorted(r["name"] for r in recs) == sorted(FANNED) and all(r["exit"] == 0 for r in recs)
    # each job saw only its worker's GPU and its share of the cores
    assert {r["cuda_visible_devices"] for r in recs} == {"0", "1"}
    assert all(r["cpus"] == [int(r["cuda_visible_devices"])] for r in recs)
    assert overlapped(recs)
    assert results(repo) == results(serial) and lock_keys(repo) == lock_keys(serial)
    assert not (run_dir / "ws").exists() or not any((run_dir / "ws").iterdir())  # workspaces of done jobs removed
    assert json.loads(run(["dvc", "status", "--json"], repo, env).stdout) == {}
    again = fanout(repo, env, "--workers", "2").stdout
    assert "nothing to fan out: every stage is up to date" in again and len(runs(repo)) == 1


@pytest.mark.slow
def test_slurm_jobs_a_failed_point_named_the_rest_kept_and_a_rerun_submits_only_it(tmp_path, serial, slurm):
    # a point whose batch (512) is larger than its 128 images fails; the other stages do not
    repo, env = small_repo(tmp_path, batch_sizes=[512])
    env = {**env, **slurm}
    args = ["--executor", "slurm", "--partition", "debug", "--time", "10", "--cpus-per-job", "1", "--max-running", "2"]
    first = fanout(repo, env, *args, check=False)
    assert first.returncode == 1
    bad = "ablate_batch_size@512-1-0"
    (run_dir,) = runs(repo)
    index = json.loads((run_dir / "plan.json").read_text())["jobs"].index(
        next(j for j in json.loads((run_dir / "plan.json").read_text())["jobs"] if j["name"] == bad))
    assert f"failed: {bad} (exit " in first.stderr
    assert "batch_size 512 is larger than the 128 images" in first.stderr
    assert f"log: {run_dir}/logs/{index}.log" in first.stderr
    script = (run_dir / "slurm.sh").read_text().splitlines()
    for line in ("#SBATCH --partition=debug", "#SBATCH --time=10", "#SBATCH --cpus-per-task=1"):
        assert line in script
    assert any(line.startswith("#SBATCH --array=") and line.endswith("%2") for line in script)
    recs = records(run_dir)
    assert all(r["slurm_job"] for r in recs) and overlapped(recs)
    # the other stages were restored here; only the failed point and the report are left
    assert set(json.loads(run(["dvc", "status", "--json"], repo, env).stdout)) == {bad, "report"}
    assert results(repo) == results(serial) and lock_keys(repo) == lock_keys(serial)
    second = fanout(repo, env, *args, check=False)
    assert second.returncode == 1 and f"failed: {bad}" in second.stderr
    assert [j["name"] for j in json.loads((runs(repo)[-1] / "plan.json").read_text())["jobs"]] == [bad]


@pytest.mark.slow
def test_a_sweep_through_slurm_lands_in_dvc_exp_show(tmp_path, slurm):
    repo, env = init_dvc_repo(tmp_path)
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["ablation"].update(temperatures=[], heads=[], batch_sizes=[], augment_pairs=[])
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    run(["git", "commit", "-qam", "no grids"], repo, env)
    out = fanout(repo, {**env, **slurm}, "--executor", "slurm", "--cpus-per-job", "1", "-S", "temperature=0.1,0.5").stdout
    assert "2 experiment(s) pushed to this project" in out
    shown = exp_metrics(repo, env)
    assert set(shown) == {"temperature-0.1", "temperature-0.5"}
    # the same experiments run here one by one
    for t in ("0.1", "0.5"):
        run(ONE_CORE + ["dvc", "exp", "run", "-n", f"here-{t}", "-S", f"temperature={t}"], repo, env)
    here = exp_metrics(repo, env)
    for t in ("0.1", "0.5"):
        assert shown[f"temperature-{t}"] == here[f"here-{t}"]
    again = fanout(repo, {**env, **slurm}, "--executor", "slurm", "-S", "temperature=0.1").stdout
    assert "experiment temperature-0.1 exists already" in again and "nothing to run" in again


def exp_metrics(repo: Path, env: dict) -> dict:
    """`dvc exp show` of the workspace (DVC's API): each experiment's params and metrics, timings left out."""
    import dvc.api

    skip = {"Experiment", "rev", "typ", "Created", "parent", "State", "Executor"}
    return {row["Experiment"]: {k: v for k, v in row.items() if k not in skip and k.split(":")[-1] not in TIMINGS}
            for row in dvc.api.exp_show(repo=str(repo)) if row.get("Experiment")}


@pytest.mark.slow
def test_through_the_remote_with_no_shared_cache_and_a_killed_job_reported_then_rerun(tmp_path, serial):
    repo, env = small_repo(tmp_path)
    storage = tmp_path / "storage"
    run(["dvc", "remote", "add", "-d", "-f", "storage", str(storage)], repo, env)
    run(["git", "commit", "-qam", "a remote"], repo, env)
    cmd = [str(BIN / "simclr"), "fanout", "--poll-seconds", "0.3", "--workers", "2", "--through", "remote"]
    full_env = {**os.environ, **env, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(cmd, cwd=repo, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # the first job, killed with its whole process group while it runs
    deadline = time.monotonic() + 300
    while not list((repo / ".simclr/fanout").glob("*/jobs/0.json")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    (record,) = (repo / ".simclr/fanout").glob("*/jobs/0.json")
    killed = json.loads(record.read_text())
    time.sleep(2)
    os.killpg(killed["pgid"], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 1, stdout + stderr
    assert f"failed: {killed['name']} (killed (no exit status))" in stderr
    # the jobs ran with caches of their own: what they made reached this workspace through the remote
    plan = json.loads((runs(repo)[0] / "plan.json").read_text())
    assert plan["cache_dir"] is None and plan["remote"]["url"] == str(storage)
    rerun = fanout(repo, env, "--workers", "2", "--through", "remote").stdout
    assert [j["name"] for j in json.loads((runs(repo)[-1] / "plan.json").read_text())["jobs"]] == [killed["name"]]
    assert f"Stage '{killed['name']}' is cached - skipping run" in rerun and "Running stage 'report'" in rerun, rerun
    assert results(repo) == results(serial) and lock_keys(repo) == lock_keys(serial)
