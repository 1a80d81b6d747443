"""End to end through DVC in a temporary git+DVC repo: repro, no-op repro, a typo, an experiment."""

import json

import pytest
import yaml
from support import init_dvc_repo, run

pytestmark = pytest.mark.slow

# tiny params: one budget (1 epoch) and one seed (0): DVC names a point <value>-<epochs>-<seed>
ABLATION = ["ablate_augment@crop+color-1-0", "ablate_batch_size@64-1-0", "ablate_head@mlp-1-0", "ablate_head@none-1-0",
            "ablate_temperature@0.5-1-0"]
OUTPUTS = ["data/prepared/manifest.json", "models/encoder.pt", "metrics/pretrain.json", "metrics/pretrain_history.csv",
           "metrics/linear_eval.json", "metrics/confusion.csv", "metrics/linear_eval_correct.json", "reports/report.md", "reports/index.html",
           "reports/figures/curves.png", "reports/figures/metrics.png", "reports/figures/confusion.png",
           "reports/figures/view_pairs.png", "reports/figures/ablation_temperature.png",
           "reports/figures/ablation_head.png", "reports/figures/ablation_augment.png",
           "reports/figures/ablation_batch_size.png", "metrics/ablation/head/mlp/1ep-seed0.json", "metrics/finetune/0.25.json",
           "metrics/finetune/0.25-correct.json",
           "reports/figures/finetune.png"]


def assert_dvc_views(repo, env):
    """What `dvc plots show` draws and what `dvc exp show` tabulates, as their JSON says."""
    from simclr.core.grids import GRIDS

    plots = json.loads(run(["dvc", "plots", "show", "--json"], repo, env).stdout)["data"]
    figures = sorted(f"reports/figures/{p.name}" for p in (repo / "reports/figures").iterdir())
    expected = {"metrics/pretrain_history.csv", "metrics/confusion.csv", "pretrain_lr", "pretrain_knn_top1",
                *(f"ablation_{grid.kind}" for grid in GRIDS), *figures}
    assert set(plots) == expected  # no stray default plot of a stage's CSV, nothing missing
    assert all(p["type"] == "image" for f in figures for p in plots[f])
    (loss,) = plots["metrics/pretrain_history.csv"]  # the stage's own plot is the loss curve, not a default one
    spec = json.dumps(loss["content"])
    assert '"x": {"field": "epoch"' in spec and '"y": {"field": "loss"' in spec
    for kind in (grid.kind for grid in GRIDS):  # each grid's bars: one datapoint per row of the grid's CSV
        (vega,) = plots[f"ablation_{kind}"]
        rows = (repo / f"reports/grids/{kind}.csv").read_text().splitlines()[1:]
        assert len(vega["content"]["data"]["values"]) == len(rows) > 0, kind
    (workspace, *_) = json.loads(run(["dvc", "exp", "show", "--json"], repo, env).stdout)
    metrics = workspace["data"]["metrics"]
    # the headline metrics only (the ablation points are outputs, drawn as plots), numbers only
    assert set(metrics) == {"metrics/pretrain.json", "metrics/linear_eval.json", "metrics/finetune/0.25.json"}
    values = [v for m in metrics.values() for v in m["data"].values()]
    assert all(isinstance(v, (int, float)) for v in values), values


def ran_stages(output: str) -> list[str]:
    return sorted({line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")})


def test_repro_then_experiment_then_metrics_diff(tmp_path):
    repo, env = init_dvc_repo(tmp_path, temperature=0.2)
    first = run(["dvc", "repro"], repo, env)
    assert ran_stages(first.stdout) == sorted(ABLATION + ["check_params", "finetune@0.25", "linear_eval", "prepare",
                                                          "pretrain", "report"])
    for out in OUTPUTS:
        assert (repo / out).is_file(), out
    le = json.loads((repo / "metrics/linear_eval.json").read_text())
    assert {"top1_h", "top1_z", "knn_top1", "random_init_top1"} <= le.keys()
    pre = json.loads((repo / "metrics/pretrain.json").read_text())
    assert {"loss", "epochs", "images_per_second", "wall_seconds"} <= pre.keys() and pre["epochs"] == 2
    html = (repo / "reports/index.html").read_text()
    assert html.count('src="data:image/png;base64,') == 9 and "http" not in html
    assert_dvc_views(repo, env)
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

    # One grid value changed: only that point (and the report) runs; the other points are reused.
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["ablation"]["heads"] = ["linear", "mlp"]
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    grid = run(["dvc", "repro"], repo, env)
    assert ran_stages(grid.stdout) == ["ablate_head@linear-1-0", "check_params", "report"]
    assert "Probing h: " in (repo / "reports/report.md").read_text()

    # One more seed: every point runs once more, with it; nothing else reruns. The tables show intervals.
    raw["ablation"]["seeds"] = [0, 1]
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    seeded = run(["dvc", "repro"], repo, env)
    assert ran_stages(seeded.stdout) == sorted(["ablate_augment@crop+color-1-1", "ablate_batch_size@64-1-1",
                                                "ablate_head@linear-1-1", "ablate_head@mlp-1-1",
                                                "ablate_temperature@0.5-1-1", "check_params", "report"])
    report = (repo / "reports/report.md").read_text()
    assert "| mlp | 1 | 2 | " in report and " ± " in report and "over 2 seeds" in report
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "heads grid, two seeds"], repo, env)

    # The main knobs do not touch the ablation points (they vary ablation.base).
    exp = run(["dvc", "exp", "run", "-S", "temperature=0.5"], repo, env)
    assert ran_stages(exp.stdout) == ["check_params", "finetune@0.25", "linear_eval", "pretrain", "report"]  # prepare reused
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], repo, env).stdout)
    assert diff["metrics/pretrain.json"]["loss"]["diff"] != 0
    params_diff = json.loads(run(["dvc", "params", "diff", "--json"], repo, env).stdout)
    assert (params_diff["params.yaml"]["temperature"]["old"], params_diff["params.yaml"]["temperature"]["new"]) == (0.2, 0.5)
    # The cross-experiment view: the experiment beside its baseline, the differing param, metrics.
    table = run(["simclr", "experiments"], repo, env).stdout.splitlines()
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header[:3] == ["experiment", "baseline", "temperature"] and "linear_eval:top1_h" in header
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table[2:]]
    assert sorted(r[2] for r in rows if r[0] != "workspace") == ["0.2", "0.5"]
    # ... and as a report section when asked: only the report reruns.
    asked = run(["dvc", "exp", "run", "-S", "report.experiments=true"], repo, env)
    assert ran_stages(asked.stdout) == ["check_params", "report"]
    md = (repo / "reports/report.md").read_text()
    assert "## Experiments in this workspace" in md and "| experiment | baseline |" in md


def test_own_photos_with_unlabeled_images_through_dvc_repro(tmp_path):
    """A user's folder: train/ and test/ by class, unlabeled/ at any depth; pretraining on train+unlabeled."""
    import numpy as np
    from PIL import Image

    repo, env = init_dvc_repo(tmp_path)
    photos = repo / "data/photos"
    rng = np.random.default_rng(0)
    count = {"train": 0, "test": 0, "unlabeled": 0}
    for split, per_class in (("train", 24), ("test", 8)):
        for c in ("beach", "forest", "city"):
            (photos / split / c).mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(photos / split / c / f"{i}.jpg")
                count[split] += 1
    for i in range(100):
        folder = photos / "unlabeled" / f"2024-{i % 4:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
        count["unlabeled"] += 1
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["data"].update(source="imagefolder", root="data/photos", image_size=64, pretrain_on="train+unlabeled")  # larger images end to end
    raw["ablation"].update(temperatures=[], heads=[], batch_sizes=[], augment_pairs=[])
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "photos"], repo, env)

    run(["dvc", "repro"], repo, env)
    manifest = json.loads((repo / "data/prepared/manifest.json").read_text())
    assert manifest["images"] == {"train": 72, "test": 24, "unlabeled": 100}
    assert manifest["class_names"] == ["beach", "city", "forest"]
    pre = json.loads((repo / "metrics/pretrain.json").read_text())
    assert pre["pretrain_images"] == 172
    assert json.loads((repo / "metrics/linear_eval.json").read_text())["test_images"] == 24
    md = (repo / "reports/report.md").read_text()
    assert "72 train / 24 test images + 100 unlabeled" in md and "pretrained on 172 images" in md and "64x64" in md
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "run"], repo, env)

    # unlabeled/ gone while pretrain_on needs it: stopped at prepare with one line, outputs untouched
    before = {p: (repo / p).read_bytes() for p in ("data/prepared/manifest.json", "models/encoder.pt",
                                                   "metrics/linear_eval.json")}
    import shutil

    shutil.rmtree(photos / "unlabeled")
    raw["data"]["pretrain_on"] = "unlabeled"
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    bad = run(["dvc", "repro"], repo, env, check=False)
    assert bad.returncode != 0
    assert "error: data.pretrain_on = unlabeled needs unlabeled images, but data/photos/unlabeled is not a folder" in bad.stderr
    assert ran_stages(bad.stdout) == ["check_params"]  # before DVC removes data/prepared to rerun prepare
    assert {p: (repo / p).read_bytes() for p in before} == before
