"""Checkpoint/resume and faults of the pretrain stage (1 process, CPU: exact equality)."""

import json

import pytest
import torch
import yaml

from conftest import copy_project, make_npz, run, tiny_params

pytestmark = pytest.mark.slow
EPOCHS = 3
STEPS_PER_EPOCH = 128 // 32


def project(path, **top):
    repo = copy_project(path)
    make_npz(repo / "data/tiny.npz", n_train=128, n_test=40)
    raw = tiny_params(repo, **top)
    raw["pretrain"]["epochs"] = EPOCHS
    (repo / "params.yaml").write_text(yaml.safe_dump(raw))
    run(["simclr", "prepare"], repo)
    return repo


def pretrain(repo, env=None, check=True):
    return run(["python", "stages/pretrain.py"], repo, env, check=check)


def encoder_tensors(repo):
    blob = torch.load(repo / "models/encoder.pt", weights_only=True)
    return {f"{part}.{k}": v for part in ("encoder", "head") for k, v in blob[part].items()}


def metrics(repo):
    m = json.loads((repo / "metrics/pretrain.json").read_text())
    return {k: m[k] for k in ("loss", "epochs", "knn_top1")}


def test_killed_run_resumes_to_the_same_weights_and_metrics(tmp_path):
    straight = project(tmp_path / "straight")
    pretrain(straight)

    killed = project(tmp_path / "killed")
    proc = pretrain(killed, env={"SIMCLR_KILL_AFTER_EPOCH": "2"}, check=False)
    assert proc.returncode == -9  # SIGKILL, like a preempted job
    assert not (killed / "models/encoder.pt").exists()
    resumed = pretrain(killed)
    assert "resuming from checkpoints/pretrain/last.pt: 2 epoch(s) done" in resumed.stdout + resumed.stderr

    a, b = encoder_tensors(straight), encoder_tensors(killed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k  # exact on CPU: same ops, same order, same seeds
    assert metrics(straight) == metrics(killed)


def test_changed_temperature_does_not_resume(tmp_path):
    repo = project(tmp_path / "p", temperature=0.5)
    pretrain(repo)
    first = metrics(repo)
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump({**raw, "temperature": 0.2}))
    proc = pretrain(repo)
    text = proc.stdout + proc.stderr
    assert "was written under other params or data; not resuming, starting fresh" in text
    assert "resuming from" not in text
    second = metrics(repo)
    assert second["epochs"] == EPOCHS and second["loss"] != first["loss"]
    assert torch.load(repo / "checkpoints/pretrain/last.pt", weights_only=True)["epoch"] == EPOCHS


def test_nan_loss_stops_with_the_step_and_keeps_the_checkpoint(tmp_path):
    repo = project(tmp_path / "p")
    bad_step = STEPS_PER_EPOCH + 2  # in epoch 2, after epoch 1's checkpoint
    proc = pretrain(repo, env={"SIMCLR_INJECT_NAN_AT_STEP": str(bad_step)}, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: loss is nan at step {bad_step} (epoch 2); stopped.")
    assert "checkpoints/pretrain/last.pt, 1 epoch(s)) is kept" in lines[-1]
    ckpt = torch.load(repo / "checkpoints/pretrain/last.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["step"] == STEPS_PER_EPOCH
    assert not (repo / "models/encoder.pt").exists()
    # and the run goes on from it once the fault is gone
    proc = pretrain(repo)
    assert "resuming from checkpoints/pretrain/last.pt: 1 epoch(s) done" in proc.stdout + proc.stderr
