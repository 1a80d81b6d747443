"""DVC's promise, proved in temporary git+DVC repos: a code change retrains, the run-cache serves
pretrain, a killed temporary experiment resumes, an experiment travels between two clones.

Every command here runs with HOME holding an Accelerate default config that would switch
`accelerate launch` to DeepSpeed: the pretrain stage must not read it (a hermetic launcher).
"""

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from support import ROOT, copy_project, git_identity_env, init_dvc_repo, make_npz, run, tiny_params

pytestmark = pytest.mark.slow

USER_ACCELERATE_CONFIG = """\
compute_environment: LOCAL_MACHINE
distributed_type: DEEPSPEED
deepspeed_config: {zero_stage: 3}
mixed_precision: fp16
num_processes: 4
"""
FAULTS = str(ROOT / "tests/faults")


def no_grids(raw: dict) -> dict:
    """Tiny params without ablation points: these tests are about the main stages."""
    raw["ablation"].update(temperatures=[], heads=[], batch_sizes=[], augment_pairs=[])
    return raw


def with_user_accelerate_config(env: dict) -> dict:
    path = Path(env["HOME"]) / ".cache/huggingface/accelerate/default_config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(USER_ACCELERATE_CONFIG)
    return env


@pytest.fixture
def repo(tmp_path):
    """A committed git+DVC repo with tiny params, `dvc repro` done and committed."""
    repo, env = init_dvc_repo(tmp_path)
    raw = no_grids(yaml.safe_load((repo / "params.yaml").read_text()))
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    with_user_accelerate_config(env)
    run(["dvc", "repro"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "baseline"], repo, env)
    return repo, env


def ran(output: str) -> list[str]:
    return sorted({line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")})


def trained_from_scratch(output: str) -> bool:
    return "resuming from" not in output and "epoch 1/" in output


def changed_stages(repo, env) -> set[str]:
    return set(json.loads(run(["dvc", "status", "--json"], repo, env).stdout))


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_code_or_preset_edits_retrain_from_epoch_1_and_so_does_repro_force(repo):
    repo, env = repo
    assert changed_stages(repo, env) == set()

    # an augment preset lives in core/augment_config.py: editing it changes what pretrain trains
    params_py = repo / "src/simclr/core/augment_config.py"
    original = params_py.read_text()
    params_py.write_text(original.replace('"color": {"strength": 0.5},', '"color": {"strength": 0.4},', 1))
    assert params_py.read_text() != original
    assert {"pretrain", "linear_eval"} <= changed_stages(repo, env)
    params_py.write_text(original)
    assert changed_stages(repo, env) == set()

    # a bug fix in the loss: DVC reruns pretrain, and pretrain trains (no finished checkpoint answers)
    loss_py = repo / "src/simclr/core/loss.py"
    loss_py.write_text(loss_py.read_text() + "\n_A_STATEMENT = 1\n")
    assert "pretrain" in changed_stages(repo, env)
    out = run(["dvc", "repro"], repo, env).stdout
    assert "pretrain" in ran(out) and trained_from_scratch(out)

    # a forced rerun retrains too (the checkpoint of a finished run is gone)
    out = run(["dvc", "repro", "-f", "pretrain"], repo, env).stdout  # -f forces the stages upstream too
    assert "pretrain" in ran(out) and trained_from_scratch(out)
    assert not list((repo / ".simclr/checkpoints").iterdir())


def test_dvc_parse_errors_when_params_yaml_lacks_what_dvc_yaml_interpolates(repo):
    repo, env = repo
    (repo / "params.yaml").rename(repo / "params.moved")
    out = run(["dvc", "repro"], repo, env, check=False)
    assert out.returncode != 0
    assert ("failed to parse 'stages.finetune.matrix' in 'dvc.yaml': "
            "Could not find 'finetune.label_fractions'") in out.stderr  # the line docs/errors.md#errors explains


def exp_file(repo, env, name: str, path: str) -> str:
    """A file as experiment `name` committed it."""
    refs = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], repo, env).stdout.split()
    (ref,) = [r for r in refs if r.endswith(f"/{name}")]
    return run(["git", "show", f"{ref}:{path}"], repo, env).stdout


def encoder_md5(lock_text: str) -> str:
    outs = yaml.safe_load(lock_text)["stages"]["pretrain"]["outs"]
    (encoder,) = [o for o in outs if o["path"] == "models/encoder.pt"]
    return encoder["md5"]


def test_temporary_experiments_reuse_pretrain_and_resume_after_a_kill(repo):
    repo, env = repo

    # only a linear_eval key: pretrain is not retrained in the temporary copy
    out = run(["dvc", "exp", "run", "--temp", "-n", "probe-temp", "-S", "linear_eval.val_fraction=0.2"], repo, env).stdout
    assert ran(out) == ["check_params", "linear_eval", "report"]  # only linear_eval reads the validation split
    assert "Stage 'pretrain' didn't change, skipping" in out
    workspace = run(["dvc", "exp", "run", "-n", "probe-ws", "-S", "linear_eval.val_fraction=0.2"], repo, env).stdout
    assert "pretrain" not in ran(workspace)
    assert json.loads(exp_file(repo, env, "probe-temp", "metrics/linear_eval.json")) == json.loads(
        (repo / "metrics/linear_eval.json").read_text())
    run(["git", "checkout", "--", "."], repo, env)
    run(["dvc", "checkout", "-q"], repo, env)

    # a value seen before: restored from the run-cache instead of retrained
    first = run(["dvc", "exp", "run", "--temp", "-S", "temperature=0.5"], repo, env).stdout
    assert "pretrain" in ran(first)
    again = run(["dvc", "exp", "run", "--temp", "-S", "temperature=0.5", "-S", "linear_eval.val_fraction=0.2"], repo,
                env).stdout
    assert "Stage 'pretrain' is cached - skipping run" in again and "pretrain" not in ran(again)

    # killed after epoch 2 inside a temporary copy: the checkpoint is in the project's store...
    args = ["dvc", "exp", "run", "--temp", "-S", "pretrain.epochs=4"]
    killed = run(args + ["-n", "killed"], repo, {**env, "PYTHONPATH": FAULTS, "SIMCLR_FAULT": "kill-after-epoch:2"},
                 check=False)
    assert killed.returncode != 0
    (folder,) = (repo / ".simclr/checkpoints").iterdir()
    assert json.loads((folder / "run.json").read_text())["epochs_done"] == 2
    # ...so the same experiment again resumes from epoch 2
    resumed = run(args + ["-n", "resumed"], repo, env).stdout
    assert re.search(r"resuming from .*/\.simclr/checkpoints/\w+/last\.pt: 2 epoch\(s\) done", resumed)
    assert "epoch 1/4" not in resumed and "epoch 3/4" in resumed
    assert not folder.exists()
    # and ends where an uninterrupted run ends (-f: not from the run-cache)
    straight = run(args + ["-n", "straight", "-f"], repo, env).stdout
    assert trained_from_scratch(straight)
    assert encoder_md5(exp_file(repo, env, "resumed", "dvc.lock")) == encoder_md5(exp_file(repo, env, "straight", "dvc.lock"))
    for path in ("metrics/pretrain.json", "metrics/linear_eval.json"):
        a, b = (json.loads(exp_file(repo, env, name, path)) for name in ("resumed", "straight"))
        for timing in ("images_per_second", "wall_seconds"):
            a.pop(timing, None), b.pop(timing, None)
        assert a == b, path


def test_an_experiment_travels_between_two_clones_through_the_default_remote(tmp_path):
    """The committed .dvc/config: remote `storage` at ../simclr-dvc-storage beside the clone."""
    env = with_user_accelerate_config(git_identity_env(tmp_path))
    seed = copy_project(tmp_path / "seed")
    make_npz(seed / "data/tiny.npz", n_train=128, n_test=40)
    (seed / "params.yaml").write_text(yaml.safe_dump(no_grids(tiny_params(seed)), sort_keys=False))
    run(["git", "init", "-q"], seed, env)
    run(["dvc", "init", "-q"], seed, env)
    shutil.copy(ROOT / ".dvc/config", seed / ".dvc/config")
    run(["git", "add", "-A"], seed, env)
    run(["git", "commit", "-qm", "project"], seed, env)
    run(["git", "clone", "-q", "--bare", str(seed), str(tmp_path / "origin.git")], tmp_path, env)

    a, b = tmp_path / "a", tmp_path / "b"
    run(["git", "clone", "-q", str(tmp_path / "origin.git"), str(a)], tmp_path, env)
    run(["dvc", "repro"], a, env)
    run(["git", "add", "-A"], a, env)
    run(["git", "commit", "-qm", "baseline results"], a, env)
    run(["git", "push", "-q", "origin", "HEAD"], a, env)
    run(["dvc", "push"], a, env)
    assert (tmp_path / "simclr-dvc-storage").is_dir()
    run(["dvc", "exp", "run", "-n", "warmer", "-S", "temperature=0.5"], a, env)
    run(["dvc", "exp", "push", "origin", "warmer"], a, env)
    exp_encoder, exp_metrics = md5(a / "models/encoder.pt"), (a / "metrics/linear_eval.json").read_text()

    run(["git", "clone", "-q", str(tmp_path / "origin.git"), str(b)], tmp_path, env)
    run(["dvc", "pull"], b, env)  # the baseline's outputs
    run(["git", "checkout", "-q", "--", "."], a, env)
    run(["dvc", "checkout", "-q"], a, env)
    assert md5(b / "models/encoder.pt") == md5(a / "models/encoder.pt")
    # the model registry convention: a version of the artifact is a git tag; `artifacts get` takes the latest
    run(["git", "tag", "-a", "simclr-encoder@v1.0.0", "-m", "baseline encoder"], a, env)
    run(["dvc", "artifacts", "get", str(a), "simclr-encoder", "-o", str(tmp_path / "got.pt")], tmp_path, env)
    assert md5(tmp_path / "got.pt") == md5(a / "models/encoder.pt")
    run(["dvc", "exp", "pull", "origin", "warmer"], b, env)
    run(["dvc", "exp", "apply", "warmer"], b, env)
    assert md5(b / "models/encoder.pt") == exp_encoder
    assert (b / "metrics/linear_eval.json").read_text() == exp_metrics
    assert yaml.safe_load((b / "params.yaml").read_text())["temperature"] == 0.5
