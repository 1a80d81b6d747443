"""The checkpoint store (simclr.core.checkpoint) and the code digest its fingerprint uses (simclr.core.sources)."""

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support import ROOT
from torch import nn

from simclr.core.checkpoint import (
    CheckpointRun,
    TrainingState,
    list_runs,
    remove_run,
    restore_optimizer,
    training_blob,
)
from simclr.core.errors import CheckpointError
from simclr.core.sources import PACKAGE_DIR, project_imports, source_digest
from simclr.core.store import store_path


def test_fp16_grad_scaler_state_survives_a_checkpoint(tmp_path):
    """fp16 training (CUDA) keeps its loss scale across a resume; the same GradScaler class runs on CPU."""
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1)
    for _ in range(3):  # every finite step doubles the scale (growth_interval=1)
        scaler.scale(model(torch.randn(8, 4)).sum()).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
    assert scaler.get_scale() == 2.0**13
    torch.save(training_blob(TrainingState(epoch=1, step=3), model, opt, scaler), tmp_path / "c.pt")
    blob = torch.load(tmp_path / "c.pt", weights_only=True)

    fresh_opt = torch.optim.SGD(model.parameters(), lr=0.1)
    fresh = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1)
    restore_optimizer(blob, fresh_opt, fresh)
    assert fresh.get_scale() == 2.0**13 and fresh.state_dict() == scaler.state_dict()
    assert blob["scaler"] is not None and training_blob(TrainingState(), model, opt, None)["scaler"] is None


def test_one_process_per_fingerprint(tmp_path):
    first = CheckpointRun(tmp_path, "abc", {"config": {}})
    assert first.acquire() is None
    second = CheckpointRun(tmp_path, "abc", {"config": {}})
    refusal = second.acquire()
    assert refusal.startswith(f"pid {os.getpid()} on ") and "is already training this exact configuration" in refusal
    assert CheckpointRun(tmp_path, "other", {}).acquire() is None  # other runs are not held up
    assert [r["in_use"] for r in list_runs(tmp_path) if r["fingerprint"] == "abc"] == [True]
    with pytest.raises(CheckpointError, match="is in use by a running pretrain"):
        remove_run(tmp_path, "abc")
    first.release()
    assert not (tmp_path / "abc").exists()  # released before its first checkpoint: nothing to keep
    assert second.acquire() is None


def test_a_checkpoint_stays_until_the_run_finishes(tmp_path):
    run = CheckpointRun(tmp_path, "abc", {"config": {"batch_size": 8}})
    run.acquire()
    model = nn.Linear(2, 2)
    run.save(training_blob(TrainingState(epoch=2, step=10), model, torch.optim.SGD(model.parameters(), lr=1), None))
    run.release()  # interrupted
    (listed,) = list_runs(tmp_path)
    assert (listed["fingerprint"], listed["epochs_done"], listed["in_use"]) == ("abc", 2, False)
    again = CheckpointRun(tmp_path, "abc", {})
    assert again.acquire() is None
    assert again.load(print)["epoch"] == 2
    again.finish()
    assert list_runs(tmp_path) == []


def test_an_unreadable_checkpoint_is_one_notice_and_a_fresh_start(tmp_path):
    run = CheckpointRun(tmp_path, "abc", {})
    run.path.parent.mkdir(parents=True)
    run.path.write_bytes(b"not a checkpoint")
    lines = []
    assert run.load(lines.append) is None
    assert lines == [f"notice: checkpoint {run.path} is unreadable (UnpicklingError); starting fresh"]


def test_a_relative_store_is_taken_from_the_dvc_project(tmp_path, monkeypatch):
    """DVC sets DVC_ROOT for every stage: for --queue/--temp the project the experiment started from."""
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "project"))
    assert store_path(".simclr/checkpoints") == tmp_path / "project/.simclr/checkpoints"
    assert store_path(str(tmp_path / "abs")) == tmp_path / "abs"
    monkeypatch.setenv("SCRATCH", str(tmp_path / "scratch"))
    assert store_path("$SCRATCH/ckpt") == tmp_path / "scratch/ckpt"
    monkeypatch.delenv("DVC_ROOT")
    assert store_path(".simclr/checkpoints") == Path(".simclr/checkpoints")
    monkeypatch.delenv("SIMCLR_UNSET", raising=False)
    with pytest.raises(CheckpointError, match=r"^pretrain.checkpoint_dir = '\$SIMCLR_UNSET/ckpt': \$SIMCLR_UNSET is not set"):
        store_path("$SIMCLR_UNSET/ckpt")


def test_imports_are_followed_into_functions_and_through_modules():
    files = {p.relative_to(ROOT).as_posix() for p in project_imports(ROOT / "stages/ablate.py")}
    # the stage imports ablation, ablation imports pretrain, pretrain imports the loss
    assert {"stages/ablate.py", "stages/_local_src.py", "src/simclr/ablation.py", "src/simclr/pretrain.py",
            "src/simclr/core/loss.py", "src/simclr/core/__init__.py", "src/simclr/__init__.py"} <= files
    assert not any(f.startswith("src/simclr/report") for f in files) and "src/simclr/cli.py" not in files
    # and into functions: the pretrain stage imports the loop only where it trains
    assert "src/simclr/pretrain.py" in {p.relative_to(ROOT).as_posix() for p in project_imports(ROOT / "stages/pretrain.py")}


def test_the_code_digest_ignores_comments_but_not_code(tmp_path):
    def digest(text):
        module = tmp_path / "simclr_mod.py"
        module.write_text(text)
        return source_digest([module])

    base = digest("def f(x):\n    return x * 2\n")
    assert digest("# why\ndef f(x):  # doubles\n\n    return x * 2  \n") == base
    assert digest("def f(x):\n    return x * 3\n") != base
    assert digest("def f(x):\n    return x * 2\n_UNUSED = 1\n") != base
    # the same files wherever the project lives: names are taken inside the package
    assert source_digest([PACKAGE_DIR / "core/loss.py"]) == source_digest([PACKAGE_DIR / "core/loss.py"])


def test_the_lock_is_released_by_the_kernel_when_its_process_dies(tmp_path):
    code = ("import sys; from simclr.core.checkpoint import CheckpointRun; from pathlib import Path; "
            "CheckpointRun(Path(sys.argv[1]), 'abc', {}).acquire(); import os; os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)  # dies holding it
    fd = os.open(tmp_path / "abc" / "lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # would raise if a stale lock remained
    os.close(fd)


def test_atomic_writes_give_the_mode_a_plain_write_gives(tmp_path):
    """mkstemp's 0600 would make outputs unreadable to others sharing the DVC cache."""
    from simclr.core import atomic

    for mask in (0o022, 0o077):
        old = atomic._UMASK
        atomic._UMASK = mask
        try:
            atomic.write_text_atomic(tmp_path / "out.json", "{}")
            atomic.torch_save_atomic({"w": torch.zeros(1)}, tmp_path / "out.pt")
        finally:
            atomic._UMASK = old
        assert (tmp_path / "out.json").stat().st_mode & 0o777 == 0o666 & ~mask
        assert (tmp_path / "out.pt").stat().st_mode & 0o777 == 0o666 & ~mask
