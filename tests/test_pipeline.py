"""End to end through DVC in a temporary git+DVC repo: repro, no-op repro, a typo, an experiment."""

import json

import pytest
import yaml

from conftest import init_dvc_repo, run

pytestmark = pytest.mark.slow

OUTPUTS = ["data/prepared/manifest.json", "models/encoder.pt", "metrics/pretrain.json", "metrics/pretrain_history.csv",
           "metrics/linear_eval.json", "metrics/confusion.csv", "reports/report.md", "reports/index.html",
           "reports/figures/curves.png", "reports/figures/metrics.png", "reports/figures/confusion.png",
           "reports/figures/view_pairs.png"]


def ran_stages(output: str) -> list[str]:
    return sorted({line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")})


def test_repro_then_experiment_then_metrics_diff(tmp_path):
    repo, env = init_dvc_repo(tmp_path, temperature=0.2)
    first = run(["dvc", "repro"], repo, env)
    assert ran_stages(first.stdout) == ["check_params", "linear_eval", "prepare", "pretrain", "report"]
    for out in OUTPUTS:
        assert (repo / out).is_file(), out
    le = json.loads((repo / "metrics/linear_eval.json").read_text())
    assert {"top1_h", "top1_z", "knn_top1", "random_init_top1"} <= le.keys()
    pre = json.loads((repo / "metrics/pretrain.json").read_text())
    assert {"loss", "epochs", "images_per_second", "wall_seconds"} <= pre.keys() and pre["epochs"] == 2
    html = (repo / "reports/index.html").read_text()
    assert html.count('src="data:image/png;base64,') == 4 and "http" not in html
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "baseline"], repo, env)

    again = run(["dvc", "repro"], repo, env)
    assert ran_stages(again.stdout) == []

    # A typo: stopped by check_params before any stage that owns real outputs runs.
    before = {p: (repo / p).read_bytes() for p in ("metrics/linear_eval.json", "reports/report.md", "models/encoder.pt")}
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump({**raw, "temprature": 0.5}, sort_keys=False))
    bad = run(["dvc", "repro"], repo, env, check=False)
    assert bad.returncode != 0
    assert "error: params.yaml: temprature = 0.5 is not allowed" in bad.stderr + bad.stdout
    assert ran_stages(bad.stdout) == ["check_params"]
    assert {p: (repo / p).read_bytes() for p in before} == before
    run(["git", "checkout", "params.yaml"], repo, env)

    exp = run(["dvc", "exp", "run", "-S", "temperature=0.5"], repo, env)
    assert ran_stages(exp.stdout) == ["check_params", "linear_eval", "pretrain", "report"]  # prepare reused
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], repo, env).stdout)
    assert diff["metrics/pretrain.json"]["loss"]["diff"] != 0
    params_diff = json.loads(run(["dvc", "params", "diff", "--json"], repo, env).stdout)
    assert (params_diff["params.yaml"]["temperature"]["old"], params_diff["params.yaml"]["temperature"]["new"]) == (0.2, 0.5)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo, env).stdout)
    assert shown  # the experiment is listed
