"""Watching a run: metrics/pretrain.json every epoch and pretrain.log_with's trackers
(simclr.core.tracking), through the pretrain stage and `dvc exp run`."""

import importlib.util
import json

import pytest
import yaml
from support import ROOT, copy_project, init_dvc_repo, make_npz, prepared_project, run, stage_command, tiny_params

from simclr.core.tracking import flat_config

pytestmark = pytest.mark.slow
FAULTS = {"PYTHONPATH": str(ROOT / "tests/faults")}


def project(path, **pretrain):
    return prepared_project(path, epochs=3, **pretrain)


def dvclive_rows(repo, metric):
    lines = (repo / "logs/dvclive/pretrain/plots/metrics" / f"{metric}.tsv").read_text().splitlines()
    return [line.split("\t") for line in lines[1:]]  # step, value


def test_metrics_are_written_every_epoch_and_a_resumed_run_rebuilds_the_dvclive_history(tmp_path):
    straight = project(tmp_path / "straight", log_with="dvclive")
    run(stage_command("pretrain"), straight)

    killed = project(tmp_path / "killed", log_with="dvclive")
    proc = run(stage_command("pretrain"), killed, {**FAULTS, "SIMCLR_FAULT": "kill-after-epoch:2"}, check=False)
    assert proc.returncode == -9
    live = json.loads((killed / "metrics/pretrain.json").read_text())
    history = (killed / "metrics/pretrain_history.csv").read_text().splitlines()
    assert live["epochs"] == 2 and len(history) == 3  # header + 2 epochs, before the run finished
    assert f"{live['loss']}" == history[2].split(",")[2]
    assert not (killed / "models/encoder.pt").exists()

    run(stage_command("pretrain"), killed)
    for metric in ("loss", "lr", "images_per_second"):
        steps = [step for step, _ in dvclive_rows(killed, metric)]
        assert steps == ["1", "2", "3"], metric  # no duplicate or missing epoch after the kill
    assert dvclive_rows(killed, "loss") == dvclive_rows(straight, "loss")  # exact resume: the same values
    final = json.loads((killed / "metrics/pretrain.json").read_text())
    assert final["epochs"] == 3 and final == {**json.loads((straight / "metrics/pretrain.json").read_text()),
                                               **{k: final[k] for k in ("images_per_second", "wall_seconds")}}


@pytest.mark.parametrize("tracker, written", [("tensorboard", "logs/tensorboard/pretrain-*/events.out.tfevents.*"),
                                              ("dvclive", "logs/dvclive/pretrain/metrics.json")])
def test_dvc_exp_run_with_a_tracker_writes_its_logs_and_leaves_dvc_yaml_alone(tmp_path, tracker, written):
    repo, env = init_dvc_repo(tmp_path)
    dvc_yaml = (repo / "dvc.yaml").read_bytes()
    run(["dvc", "exp", "run", "pretrain", "-S", f"pretrain.log_with={tracker}"], repo, env)
    assert sorted(repo.glob(written)), f"{tracker} wrote nothing at {written}"
    assert (repo / "dvc.yaml").read_bytes() == dvc_yaml
    exps = run(["dvc", "exp", "list", "--name-only"], repo, env).stdout.split()
    assert len(exps) == 1  # the one `dvc exp run` made; DVCLive saved none of its own
    if tracker == "dvclive":
        summary = json.loads((repo / written).read_text())
        assert summary["step"] == 2 and set(summary) >= {"loss", "lr", "knn_top1", "images_per_second"}


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_a_tracker_that_is_not_installed_stops_check_params(tmp_path):
    """wandb is not in the test set (constraints.txt), so it is the missing package."""
    repo = copy_project(tmp_path / "p")
    make_npz(repo / "data/tiny.npz", n_train=128, n_test=40)
    raw = tiny_params(repo)
    raw["pretrain"]["log_with"] = "wandb"
    (repo / "params.yaml").write_text(yaml.safe_dump(raw))
    proc = run(stage_command("check_params"), repo, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: pretrain.log_with = wandb needs the wandb package, which is not installed: "
        "pip install 'simclr-dvc[wandb]' (or set pretrain.log_with: none)"]


def test_flat_config_gives_tensorboard_scalars():
    assert flat_config({"a": {"b": [1, 2], "c": None}, "d": 0.5, "e": "x"}) == {"a.b": "[1, 2]", "a.c": "None",
                                                                              "d": 0.5, "e": "x"}
