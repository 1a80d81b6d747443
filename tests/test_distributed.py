"""Multi-process pretraining on CPU (torchrun + gloo): the gather, the whole loop, the timeout."""

import json
import time

import pytest
import yaml
from support import ROOT, copy_project, make_npz, run, stage_command, tiny_params

pytestmark = pytest.mark.slow


def torchrun(args, cwd, env=None, check=True, timeout=300):
    return run(["torchrun", "--standalone", "--nproc_per_node", "2", *args], cwd, env, check=check, timeout=timeout)


@pytest.mark.parametrize("mode", ["with_grad", "without_grad"])
def test_two_processes_equal_one_process_only_with_the_gradient_gather(tmp_path, mode):
    """Loss and every parameter gradient of a 2-process DDP step equal the 1-process step over the
    same global batch (1e-5) -- and the same check fails when the gather drops its gradient."""
    out = tmp_path / "result.json"
    torchrun([str(ROOT / "tests/dist_worker.py"), str(out), mode], tmp_path)
    r = json.loads(out.read_text())
    assert r["world"] == 2
    assert r["loss"] == pytest.approx(r["reference_loss"], abs=1e-5)  # the forward is right either way
    if mode == "with_grad":
        assert r["max_grad_diff"] < 1e-5
    else:
        assert r["max_grad_diff"] > 1e-3 * r["max_grad"]  # remote negatives' terms are missing


def project(tmp_path, **top):
    repo = copy_project(tmp_path / "p")
    make_npz(repo / "data/tiny.npz", n_train=128, n_test=40)
    raw = tiny_params(repo, **top)
    raw["pretrain"]["num_processes"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(raw))
    run(stage_command("prepare"), repo)
    return repo


def test_the_pretrain_stage_starts_its_two_processes_itself(tmp_path):
    """`pretrain.num_processes: 2` is all it takes: the stage launches torchrun (no Accelerate config read)."""
    repo = project(tmp_path)
    proc = run(stage_command("pretrain"), repo, timeout=300)
    text = proc.stdout + proc.stderr
    assert "pretrain: starting 2 processes (torchrun --standalone --nproc_per_node 2)" in text
    assert "global batch 32 (2 x 16)" in text
    assert "notice: SyncBatchNorm not used on cpu" in text
    metrics = json.loads((repo / "metrics/pretrain.json").read_text())
    assert metrics["epochs"] == 2
    assert (repo / "models/encoder.pt").is_file()


def test_an_error_in_two_processes_is_still_one_line(tmp_path):
    """A worker's error is its one line; the launcher adds no report of its own (exit status 2)."""
    repo = project(tmp_path)
    fault = {"PYTHONPATH": str(ROOT / "tests/faults"), "SIMCLR_FAULT": "nan-loss:3"}
    proc = run(stage_command("pretrain"), repo, env=fault, check=False, timeout=300)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower() or "Traceback" in line]
    assert len(errors) == 1 and errors[0].startswith("error: loss is nan at step 3 (epoch 1); stopped."), proc.stderr
    assert "No epoch had finished, so there is no checkpoint to resume" in errors[0]


def test_a_stalled_rank_fails_the_run_within_the_timeout(tmp_path):
    repo = project(tmp_path)
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["pretrain"]["dist_timeout_seconds"] = 10
    (repo / "params.yaml").write_text(yaml.safe_dump(raw))
    start = time.monotonic()
    fault = {"PYTHONPATH": str(ROOT / "tests/faults"), "SIMCLR_FAULT": "stall:1:3"}  # rank 1 hangs before step 3
    proc = torchrun(stage_command("pretrain")[1:], repo, env=fault, check=False, timeout=240)
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    assert elapsed < 120, f"took {elapsed:.0f}s"
