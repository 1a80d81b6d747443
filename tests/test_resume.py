"""Checkpoint/resume and faults of the pretrain stage (1 process, CPU: exact equality).

Faults are injected from outside the production code: tests/faults/sitecustomize.py, put on
PYTHONPATH, patches simclr.pretrain in the stage's own process (SIGKILL after an epoch's
checkpoint, a NaN loss, a NaN gradient).
"""

import fcntl
import json
import os

import pytest
import torch
import yaml
from support import ROOT, prepared_project, run, stage_command

pytestmark = pytest.mark.slow
EPOCHS = 3
STEPS_PER_EPOCH = 128 // 32
RESUMING = "resuming from .simclr/checkpoints/"


def project(path, **pretrain):
    return prepared_project(path, epochs=EPOCHS, **pretrain)


def set_params(repo, update):
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    update(raw)
    (repo / "params.yaml").write_text(yaml.safe_dump(raw))


def pretrain(repo, fault=None, check=True):
    env = {"PYTHONPATH": str(ROOT / "tests/faults"), "SIMCLR_FAULT": fault} if fault else None
    proc = run(stage_command("pretrain"), repo, env, check=check)
    proc.text = proc.stdout + proc.stderr
    return proc


def checkpoints(repo):
    """{fingerprint: epochs in its checkpoint (None: folder without one)} of the repo's store."""
    store = repo / ".simclr/checkpoints"
    folders = sorted(p for p in store.iterdir() if p.is_dir()) if store.is_dir() else []
    return {f.name: (torch.load(f / "last.pt", weights_only=True)["epoch"] if (f / "last.pt").exists() else None)
            for f in folders}


def encoder_tensors(repo):
    blob = torch.load(repo / "models/encoder.pt", weights_only=True)
    return {f"{part}.{k}": v for part in ("encoder", "head") for k, v in blob[part].items()}


def assert_same_weights(a, b):
    a, b = encoder_tensors(a), encoder_tensors(b)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k  # exact on CPU: same ops, same order, same seeds


def metrics(repo):
    m = json.loads((repo / "metrics/pretrain.json").read_text())
    return {k: m[k] for k in ("loss", "epochs", "knn_top1")}


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """One uninterrupted run, the reference the resumed runs must equal."""
    repo = project(tmp_path_factory.mktemp("straight") / "p")
    pretrain(repo)
    return repo


def test_killed_run_resumes_to_the_same_weights_and_metrics_and_leaves_no_checkpoint(tmp_path, straight):
    assert checkpoints(straight) == {}  # the finished run's checkpoint is gone: DVC's cache holds the result

    killed = project(tmp_path / "killed")
    proc = pretrain(killed, fault="kill-after-epoch:2", check=False)
    assert proc.returncode == -9  # SIGKILL, like a preempted job
    assert not (killed / "models/encoder.pt").exists()
    assert list(checkpoints(killed).values()) == [2]
    resumed = pretrain(killed)
    assert RESUMING in resumed.text and ": 2 epoch(s) done" in resumed.text
    assert_same_weights(straight, killed)
    assert metrics(straight) == metrics(killed)
    assert checkpoints(killed) == {}


def test_keys_that_do_not_train_leave_the_weights_bit_identical(tmp_path, straight):
    """The pretrain keys outside dvc.yaml's params (simclr.core.config.PRETRAIN_RUNTIME_KEYS) change nothing trained."""
    repo = project(tmp_path / "p", knn_every=0, knn_k=5, knn_temperature=0.5, log_every_steps=3, dist_timeout_seconds=30,
                   checkpoint_dir=str(tmp_path / "elsewhere"))
    proc = pretrain(repo)
    assert f"checkpoints in {tmp_path / 'elsewhere'}/" in proc.text
    assert_same_weights(straight, repo)
    assert metrics(repo)["loss"] == metrics(straight)["loss"]


def test_changed_params_or_code_never_resume_a_checkpoint(tmp_path):
    repo = project(tmp_path / "p")
    set_params(repo, lambda raw: raw.update(temperature=0.5))
    pretrain(repo, fault="kill-after-epoch:1", check=False)
    (interrupted,) = checkpoints(repo)

    # other params: a fresh start under its own fingerprint; the interrupted run's checkpoint stays
    set_params(repo, lambda raw: raw.update(temperature=0.2))
    proc = pretrain(repo)
    assert RESUMING not in proc.text and f"epoch 1/{EPOCHS}" in proc.text
    assert checkpoints(repo) == {interrupted: 1}
    listing = run(["simclr", "checkpoints"], repo).stdout
    assert f"| {interrupted} | 1/{EPOCHS} |" in listing and "other params, data or code than the workspace's" in listing

    # a comment does not count as a code change: the interrupted run resumes...
    set_params(repo, lambda raw: raw.update(temperature=0.5))
    assert "interrupted; the next `dvc repro` resumes it" in run(["simclr", "checkpoints"], repo).stdout
    loss_py = repo / "src/simclr/core/loss.py"
    original = loss_py.read_text()
    loss_py.write_text(original + "\n# a comment changes nothing that runs\n")
    pretrain(repo, fault="kill-after-epoch:2", check=False)
    assert checkpoints(repo) == {interrupted: 2}
    # ...a statement does: a fresh start, never a mix of two code versions
    loss_py.write_text(original + "\n_UNUSED = 1\n")
    proc = pretrain(repo)
    assert RESUMING not in proc.text and f"epoch 1/{EPOCHS}" in proc.text
    assert checkpoints(repo) == {interrupted: 2}  # that one belongs to the old code; listed, not resumed
    assert run(["simclr", "checkpoints", "--remove-all"], repo).stdout.strip() == (
        f"removed .simclr/checkpoints/{interrupted}")
    assert checkpoints(repo) == {}


def test_a_second_process_on_the_same_run_stops_instead_of_writing_its_checkpoint(tmp_path):
    repo = project(tmp_path / "p")
    pretrain(repo, fault="kill-after-epoch:1", check=False)
    ((fingerprint, _),) = checkpoints(repo).items()
    folder = repo / ".simclr/checkpoints" / fingerprint
    before = (folder / "last.pt").read_bytes()
    fd = os.open(folder / "lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # what the first process holds while it trains
    try:
        proc = pretrain(repo, check=False)
    finally:
        os.close(fd)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: pid ")
    assert "is already training this exact configuration" in proc.stderr
    assert (folder / "last.pt").read_bytes() == before and not (repo / "models/encoder.pt").exists()
    assert RESUMING in pretrain(repo).text  # once the lock is free, the run resumes


def test_nan_loss_stops_with_the_step_and_keeps_the_checkpoint(tmp_path):
    repo = project(tmp_path / "p", log_every_steps=3)  # epoch 2's steps are 5..8, read after 7 and 8
    bad_step = STEPS_PER_EPOCH + 1  # in epoch 2, after epoch 1's checkpoint; read two steps later
    proc = pretrain(repo, fault=f"nan-loss:{bad_step}", check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: loss is nan at step {bad_step} (epoch 2); stopped. Neither that step nor a "
                                "later one was applied.")
    assert "1 epoch(s)) is kept" in lines[-1]
    assert list(checkpoints(repo).values()) == [1]
    assert not (repo / "models/encoder.pt").exists()
    # and the run goes on from it once the fault is gone
    assert RESUMING in pretrain(repo).text


def test_a_nan_gradient_with_a_finite_loss_stops_before_the_step_reaches_a_checkpoint(tmp_path):
    repo = project(tmp_path / "p")
    bad_step = 2 * STEPS_PER_EPOCH  # the last step of epoch 2: without the check, epoch 2's checkpoint holds NaN
    proc = pretrain(repo, fault=f"nan-grad:{bad_step}", check=False)
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: gradient norm is nan at step {bad_step} (epoch 2) with a finite loss (")
    assert "Neither that step nor a later one was applied" in line and "1 epoch(s)) is kept" in line
    ((fingerprint, epochs),) = checkpoints(repo).items()
    assert epochs == 1
    blob = torch.load(repo / ".simclr/checkpoints" / fingerprint / "last.pt", weights_only=True)
    assert all(torch.isfinite(t).all() for t in blob["model"].values())


def test_the_host_reads_the_device_only_every_log_every_steps_and_at_epoch_end(tmp_path):
    """Every read-back of a tensor (item, tolist, bool(), float(), ...) is traced: between two steps'
    losses there is none, except after a read step (every 3rd of an epoch, and its last)."""
    repo = project(tmp_path / "p", log_every_steps=3)
    trace = tmp_path / "trace.json"
    pretrain(repo, fault=f"trace-readbacks:{trace}")
    events = json.loads(trace.read_text())
    after = {}  # step -> the read-backs between its loss and the next step's
    for event in events:
        if event[0] == "step":
            step = event[1]
            after[step] = []
        elif after:
            after[step].append(event[1:])
    assert sorted(after) == list(range(1, EPOCHS * STEPS_PER_EPOCH + 1))
    read_steps = {s for s in after if (s - 1) % STEPS_PER_EPOCH + 1 in (3, STEPS_PER_EPOCH)}
    for s, reads in after.items():
        if s in read_steps:
            assert reads, f"step {s}: no read-back traced where the loop reads (the trace is broken)"
        else:
            assert reads == [], f"step {s} reads back: {reads}"


def test_resume_with_torch_compile(tmp_path):
    """The checkpoint holds the module as built, not torch.compile's wrapper (keys without `_orig_mod.`)."""
    straight = project(tmp_path / "straight", compile=True)
    pretrain(straight)
    killed = project(tmp_path / "killed", compile=True)
    pretrain(killed, fault="kill-after-epoch:1", check=False)
    ((fingerprint, _),) = checkpoints(killed).items()
    keys = torch.load(killed / ".simclr/checkpoints" / fingerprint / "last.pt", weights_only=True)["model"]
    assert keys and not any("_orig_mod" in k for k in keys)
    assert RESUMING in pretrain(killed).text
    assert_same_weights(straight, killed)


@pytest.mark.parametrize("damage, stage, start", [
    ("models/encoder.pt", stage_command("linear_eval"),
     ("error: models/encoder.pt is not a readable encoder file (UnpicklingError: corrupt, truncated or not written "
      "by this pipeline); restore it with `dvc checkout models/encoder.pt` or retrain with `dvc repro -f pretrain`")),
    ("data/prepared/train_x.npy", stage_command("linear_eval"),
     ("error: data/prepared/train_x.npy does not match its checksum in data/prepared/manifest.json; "
      "rerun the prepare stage (dvc repro prepare)")),
    ("data/prepared/train_x.npy", stage_command("ablate_head", {"h": "mlp", "epochs": 1, "seed": 0}),  # reads without checksums first
     "error: data/prepared/train_x.npy is not a readable .npy file (ValueError); rerun the prepare stage"),
    ("data/prepared/manifest.json", stage_command("pretrain"),
     "error: data/prepared/manifest.json is malformed (UnicodeDecodeError); rerun the prepare stage"),
])
def test_an_unreadable_file_is_one_line_naming_it_and_what_to_run(tmp_path, damage, stage, start):
    repo = project(tmp_path / "p")
    (repo / damage).parent.mkdir(parents=True, exist_ok=True)
    (repo / damage).write_bytes(b"\x80\x04garbage, not what this file should hold")
    proc = run(stage, repo, check=False)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(start), proc.stderr
    assert "weights_only" not in proc.stderr
