"""Two nodes on one machine: two launcher processes with a static rendezvous on 127.0.0.1, one
process each (gloo), launched exactly as docs/scaling.md's multi-node commands are.

Each "node" is pinned to its own core (`taskset`), so each process trains on one thread, as each
of the two processes of the one-node reference (`pretrain.num_processes: 2`) does: on a CPU the
last bits of a result depend on the thread count.
"""

import os
import shutil
import socket
import subprocess
import time

import pytest
from support import ROOT, prepared_project, run, stage_command
from test_resume import assert_same_weights, checkpoints

pytestmark = pytest.mark.slow
EPOCHS = 3
STEPS_PER_EPOCH = 128 // 32
ARGS = stage_command("pretrain")[2:]  # the stage's paths, as dvc.yaml's pretrain cmd writes them


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_node(rank: int, port: int) -> list[str]:
    """docs/scaling.md's two-node torchrun command, for node `rank`."""
    return ["torchrun", "--nnodes", "2", "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port",
            str(port), "--nproc-per-node", "1", "stages/pretrain.py", *ARGS]


def accelerate_node(rank: int, port: int) -> list[str]:
    """docs/scaling.md's two-node `accelerate launch` command (one process per node here), for node `rank`."""
    return ["accelerate", "launch", "--multi_gpu", "--num_machines", "2", "--num_processes", "2", "--machine_rank",
            str(rank), "--main_process_ip", "127.0.0.1", "--main_process_port", str(port), "stages/pretrain.py", *ARGS]


def two_nodes(repos, launch, tmp_path, fault=None, timeout=300):
    """Start node 0 and node 1 (in repos[0], repos[1]; `fault`: env of node 1), wait for both.
    Returns [(exit status, output, seconds)] per node."""
    port, procs = free_port(), []
    home = tmp_path / "home"  # no Accelerate config file of the user's in the way
    home.mkdir(exist_ok=True)
    for rank, repo in enumerate(repos):
        env = {**os.environ, "HOME": str(home), "PATH": f"{ROOT / '.venv/bin'}:{os.environ['PATH']}",
               **(fault if fault and rank == 1 else {})}
        log = open(tmp_path / f"node{rank}.log", "w")
        procs.append((subprocess.Popen(["taskset", "-c", str(rank), *launch(rank, port)], cwd=repo, env=env,
                                       stdout=log, stderr=subprocess.STDOUT), time.monotonic(), log))
    results = []
    for proc, start, log in procs:
        proc.wait(timeout=timeout)
        log.close()
        results.append((proc.returncode, open(log.name).read(), time.monotonic() - start))
    return results


def history(repo):
    lines = (repo / "metrics/pretrain_history.csv").read_text().splitlines()
    return [line.rsplit(",", 1)[0] for line in lines]  # all but images_per_second


@pytest.fixture(scope="module")
def one_node(tmp_path_factory):
    """The reference: `pretrain.num_processes: 2` on one node (the stage starts both processes)."""
    repo = prepared_project(tmp_path_factory.mktemp("one_node") / "p", epochs=EPOCHS, num_processes=2)
    proc = run(stage_command("pretrain"), repo, timeout=300)
    assert "global batch 32 (2 x 16)" in proc.stdout + proc.stderr
    return repo


def project(path):
    return prepared_project(path, epochs=EPOCHS, num_processes=2)


@pytest.mark.parametrize("launch", [torchrun_node, accelerate_node], ids=["torchrun", "accelerate"])
def test_two_nodes_train_what_one_node_with_two_processes_trains(tmp_path, one_node, launch):
    repo = project(tmp_path / "p")
    for code, err, _ in two_nodes([repo, repo], launch, tmp_path):
        assert code == 0, err[-3000:]
    node0 = (tmp_path / "node0.log").read_text()
    assert "global batch 32 (2 x 16), 4 steps/epoch" in node0 and "peak lr 0.5" in node0
    assert_same_weights(one_node, repo)
    assert history(repo) == history(one_node)  # loss, lr and kNN of every epoch


def test_the_learning_rate_follows_the_global_batch_not_the_processes(tmp_path, one_node):
    """One process, the same global batch: the lr of every epoch is the two-process (and two-node) one."""
    repo = prepared_project(tmp_path / "p", epochs=EPOCHS, num_processes=1)
    proc = run(stage_command("pretrain"), repo, timeout=300)
    assert "global batch 32 (1 x 32), 4 steps/epoch, 3 epochs, lars peak lr 0.5" in proc.stdout + proc.stderr
    lr = [line.split(",")[3] for line in history(repo)]
    assert lr == [line.split(",")[3] for line in history(one_node)]


def test_a_killed_node_stops_the_other_with_one_line_and_both_resume_to_the_same_result(tmp_path, one_node):
    repo = project(tmp_path / "p")
    bad_step = STEPS_PER_EPOCH + 2  # in epoch 2: epoch 1's checkpoint is written
    kill = {"PYTHONPATH": str(ROOT / "tests/faults"), "SIMCLR_FAULT": f"kill-node:1:{bad_step}"}
    (code0, err0, seconds0), (code1, _, _) = two_nodes([repo, repo], torchrun_node, tmp_path, fault=kill)
    assert code1 == -9  # node 1's launcher, SIGKILLed
    assert code0 != 0 and seconds0 < 60  # well within pretrain.dist_timeout_seconds (120): gloo sees the socket close
    errors = [line for line in err0.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err0
    assert errors[0].startswith(f"error: lost contact with the other processes at step {bad_step} (epoch 2): ")
    assert "1 epoch(s)) is kept; see each node's log, then start every node again to resume from it" in errors[0]
    assert list(checkpoints(repo).values()) == [1]

    results = two_nodes([repo, repo], torchrun_node, tmp_path)
    for code, err, _ in results:
        assert code == 0, err[-3000:]
    assert "resuming from .simclr/checkpoints/" in results[0][1]
    assert_same_weights(one_node, repo)
    assert history(repo) == history(one_node)


def test_nodes_with_their_own_checkpoint_stores_are_refused(tmp_path):
    repo = project(tmp_path / "p")
    other = shutil.copytree(repo, tmp_path / "q", symlinks=True)  # node 1 in another folder: its own store
    (code0, err0, _), (code1, _, _) = two_nodes([repo, other], torchrun_node, tmp_path)
    assert code0 != 0 and code1 != 0  # torchrun exits 1 when its process fails
    errors = [line for line in err0.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err0
    assert errors[0].startswith("error: process 1 on ") and "cannot see the checkpoint store" in errors[0]
    assert errors[0].endswith("put pretrain.checkpoint_dir on a file system every node shares")
    assert not (repo / "models/encoder.pt").exists() and checkpoints(repo) == {}


SBATCH_SCRIPT = ROOT / "scripts/pretrain_nodes.sbatch"


def test_the_slurm_script_trains_what_one_node_with_two_processes_trains(tmp_path, one_node, slurm):
    """scripts/pretrain_nodes.sbatch, submitted to a real SLURM. The test cluster has one node, so two
    tasks on it stand for two nodes of one task each: the script's ranks come from each task's own
    SLURM_PROCID, which is what a per-node variable expanded once in the batch shell would get wrong."""
    repo = project(tmp_path / "p")
    home = tmp_path / "home"  # no Accelerate config file of the user's in the way
    home.mkdir()
    log = tmp_path / "job.log"
    env = {**slurm, "HOME": str(home), "MAIN_PORT": str(free_port())}
    run(["sbatch", "--wait", "--nodes", "1", "--ntasks-per-node", "2", "--cpus-per-task", "1", "--time", "5",
         f"--output={log}", str(SBATCH_SCRIPT)], repo, env=env, timeout=360)
    out = log.read_text()
    assert "global batch 32 (2 x 16), 4 steps/epoch" in out and "peak lr 0.5" in out, out[-3000:]
    assert_same_weights(one_node, repo)
    assert history(repo) == history(one_node)


def test_the_slurm_script_and_the_docs_pass_the_stage_its_dvc_yaml_paths():
    expected = f'ARGS="{" ".join(ARGS)}"'
    assert f"export {expected}" in SBATCH_SCRIPT.read_text().splitlines()
    readme = (ROOT / "docs/scaling.md").read_text()
    assert expected in readme.splitlines()
    assert f"sbatch --nodes 2 --gpus-per-node 8 --cpus-per-task 32 {SBATCH_SCRIPT.relative_to(ROOT)}" in readme


@pytest.mark.parametrize("launch", [torchrun_node, accelerate_node], ids=["torchrun", "accelerate"])
def test_the_docs_show_the_commands_these_tests_run(launch):
    """docs/scaling.md's commands are the tested ones with real nodes' values: node0, port 29500, 8 GPUs each."""
    readme = " ".join((ROOT / "docs/scaling.md").read_text().replace("\\\n", " ").split())
    words = [{"127.0.0.1": "node0"}.get(w, w) for w in launch(0, 29500)]
    cmd = " ".join(words).replace(" ".join(ARGS), "$ARGS")
    cmd = cmd.replace("--nproc-per-node 1", "--nproc-per-node 8").replace("--num_processes 2", "--num_processes 16")
    assert cmd in readme
