"""What the tests share: running commands, small data, a copy of the project in a git+DVC repo,
and each stage's command as dvc.yaml writes it."""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHARED_CIFAR = ROOT.parent / "shared" / "datasets" / "cifar10.npz"

os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def run(cmd, cwd, env=None, check=True, timeout=600):
    """Run a command with the venv's bin first on PATH; returns CompletedProcess (text)."""
    full_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    full_env.update(env or {})
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
                          shell=isinstance(cmd, str))
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\nSTDOUT:\n{proc.stdout[-4000:]}\nSTDERR:\n{proc.stderr[-4000:]}")
    return proc


def make_npz(path: Path, n_train=200, n_test=50, size=32, classes=10, seed=0, **overrides):
    """A small real-image npz: the first images of the embedded CIFAR-10 sample."""
    sample = np.load(ROOT / "data" / "cifar10-sample" / "cifar10-sample.npz")
    arrays = {
        "x_train": sample["x_train"][:n_train], "y_train": sample["y_train"][:n_train],
        "x_test": sample["x_test"][:n_test], "y_test": sample["y_test"][:n_test],
        "class_names": sample["class_names"][:classes],
    }
    arrays.update(overrides)
    np.savez(path, **arrays)
    return path


def git_identity_env(home: Path) -> dict:
    return {"HOME": str(home), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}


PROJECT_FILES = ["dvc.yaml", "params.yaml", ".dvcignore", "stages", "src", "data/cifar10-sample", "metrics/ablation/README.md", "metrics/ablation_correct/README.md",
                 "metrics/finetune/README.md",
                 "pyproject.toml", ".gitignore"]


def copy_project(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for item in PROJECT_FILES:
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            (dest / item).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / item)
    return dest


def tiny_params(repo: Path, **top) -> dict:
    """The project's params.yaml shrunk to seconds: tiny npz data, width-8 encoder, 2 epochs."""

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw.update(batch_size=32, **top)
    raw["data"].update(source="npz", root="data/tiny.npz")
    raw["model"].update(width=8, head_hidden_dim=32, head_out_dim=16)
    raw["pretrain"].update(epochs=2, warmup_epochs=1, knn_every=1, knn_k=20)
    raw["linear_eval"].update(epochs=5, knn_k=20, search={"epochs": [3, 5], "lr": [0.001], "weight_decay": [1.0e-5]})
    raw["finetune"].update(label_fractions=[0.25], steps=4, batch_size=16)
    raw["report"].update(view_pairs=4)
    raw["ablation"].update(epochs=[1], seeds=[0], warmup_epochs=0, train_images=0, linear_eval_epochs=2,
                           base={**raw["ablation"]["base"], "batch_size": 32},
                           temperatures=[0.5], heads=["none", "mlp"], batch_sizes=[64], augment_pairs=["crop+color"])
    return raw


def prepared_project(path: Path, **pretrain) -> Path:
    """A copy of the project with tiny params (`pretrain` keys changed), its data prepared: ready
    for the pretrain stage's command."""
    repo = copy_project(path)
    make_npz(repo / "data/tiny.npz", n_train=128, n_test=40)
    raw = tiny_params(repo)
    raw["pretrain"].update(**pretrain)
    (repo / "params.yaml").write_text(yaml.safe_dump(raw))
    run(stage_command("prepare"), repo)
    return repo


def init_dvc_repo(tmp_path: Path, **top) -> tuple[Path, dict]:
    """A git+DVC repo holding the project with tiny params, committed; returns (repo, env)."""

    repo = copy_project(tmp_path / "repo")
    make_npz(repo / "data" / "tiny.npz", n_train=128, n_test=40)
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_params(repo, **top), sort_keys=False))
    env = git_identity_env(tmp_path)
    run(["git", "init", "-q"], repo, env)
    run(["dvc", "init", "-q"], repo, env)
    run(["dvc", "config", "core.autostage", "true"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "init"], repo, env)
    return repo, env


def dvc_paths() -> dict[str, str]:
    """The `paths` group of dvc.yaml's vars (the one place the pipeline's paths are written),
    relative to the project, as the CLI reads it."""
    from simclr.cli import dvc_paths as read

    return {name: path.relative_to(ROOT).as_posix() for name, path in read(ROOT).items()}


def stage_command(name: str, item: str | dict = "", scripts: Path | None = None, **overrides) -> list[str]:
    """The command dvc.yaml runs for stage `name` (a matrix stage: `item` is its value, or a mapping of
    the matrix's keys to values), with its
    `${paths.X}` filled in; `overrides` replace paths (``encoder="/tmp/e.pt"``), `scripts` is the
    project whose stages/ runs (default: relative, the copy the command runs in)."""
    import re

    cmd = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][name]["cmd"]
    paths = {**dvc_paths(), **{k: str(v) for k, v in overrides.items()}}
    cmd = re.sub(r"\$\{item\.(\w+)\}", lambda m: str(item[m.group(1)] if isinstance(item, dict) else item), cmd)
    cmd = re.sub(r"\$\{paths\.(\w+)\}", lambda m: paths[m.group(1)], cmd)
    words = shlex.split(cmd)
    return [str(scripts / w) if scripts and w.startswith("stages/") else w for w in words]
