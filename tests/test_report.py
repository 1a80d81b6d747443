"""The report stage on fixed stage outputs: every figure present, readable offline in Chromium."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from support import ROOT, make_npz, run, stage_command

from simclr.core.correctness import pack

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FIGURES = ["metrics.png", "curves.png", "confusion.png", "view_pairs.png", "finetune.png", "ablation_temperature.png",
           "ablation_head.png", "ablation_augment.png", "ablation_batch_size.png", "ablation_budgets.png"]


def correct(top1: float, n: int = 30, shift: int = 0) -> str:
    """A per-image record of `top1` % on n test images: the first images right, rotated by `shift`."""
    right = round(top1 * n / 100)
    return pack(np.roll(np.arange(n) < right, shift))


def write_stage_outputs(root: Path) -> None:
    """What prepare, pretrain, linear_eval, finetune and the ablate stages write, for a small run."""
    m = root / "metrics"
    (m / "ablation").mkdir(parents=True)
    (m / "pretrain.json").write_text(json.dumps({"loss": 4.1, "epochs": 3, "images_per_second": 900.0,
                                                 "wall_seconds": 12.0, "knn_top1": 31.0}))
    (m / "pretrain_history.csv").write_text("epoch,step,loss,lr,knn_top1,images_per_second\n"
                                            "1,3,4.9,0.5,,900\n2,6,4.5,1.0,28.0,900\n3,9,4.1,0.2,31.0,900\n")
    (m / "linear_eval.json").write_text(json.dumps({"top1_h": 40.0, "top1_z": 35.0, "knn_top1": 31.0,
                                                    "random_init_top1": 30.0, "random_init_knn_top1": 22.0,
                                                    "val_top1_h": 42.0, "val_images": 9, "probe_epochs": 50,
                                                    "probe_lr": 0.01, "probe_weight_decay": 0.0}))
    classes = ["airplane", "automobile", "bird"]
    rows = ["actual,predicted"] + [f"{classes[i % 3]},{classes[(i * 7) % 3]}" for i in range(30)]
    (m / "confusion.csv").write_text("\n".join(rows) + "\n")
    (m / "linear_eval_correct.json").write_text(json.dumps({"correct": {
        "top1_h": correct(40.0), "top1_z": correct(35.0), "random_init_top1": correct(30.0, shift=3)}}))
    points = {"temperature": {"0.1": 38.0, "0.5": 41.0, "1.0": 36.0}, "head": {"none": 33.0, "linear": 37.0, "mlp": 40.0},
              "batch_size": {"32": 35.0, "512": 39.0},
              "augment": {"crop": 34.0, "color": 30.0, "crop+color": 41.0, "color+crop": 39.0}}
    (m / "finetune").mkdir()
    for fraction, (tuned, scratch, linear) in {"0.01": (26.0, 25.0, 30.0), "0.1": (47.0, 38.0, 42.0)}.items():
        (m / "finetune" / f"{fraction}.json").write_text(json.dumps(
            {"label_fraction": float(fraction), "labelled_images": round(96 * float(fraction)) or 3,
             "finetune_top1": tuned, "scratch_top1": scratch, "linear_top1": linear,
             "gain_over_scratch": tuned - scratch, "test_images": 1000, "steps": 300, "wall_seconds": 9.0}))
        (m / "finetune" / f"{fraction}-correct.json").write_text(json.dumps({"correct": {
            "finetune_top1": correct(tuned), "scratch_top1": correct(scratch, shift=5), "linear_top1": correct(linear)}}))
    # two seeds (0.5 points below and above the value) at budget 3; the head and temperature grids
    # also at 30 epochs, 10 points higher
    for kind, values in points.items():
        for value, top1 in values.items():
            for epochs in (3, 30) if kind in ("head", "temperature") else (3,):
                for seed, shift in ((0, -0.5), (1, 0.5)):
                    t = top1 + shift + (10 if epochs == 30 else 0)
                    path = m / "ablation" / kind / value / f"{epochs}ep-seed{seed}.json"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(json.dumps({"top1_h": t, "top1_z": t - 4, "knn_top1": t - 6, "loss": 4.3,
                                                "train_images": 96, "wall_seconds": 5.0}))
                    record = m / "ablation_correct" / path.relative_to(m / "ablation")
                    record.parent.mkdir(parents=True, exist_ok=True)
                    record.write_text(json.dumps({"correct": {"top1_h": correct(t, shift=seed), "top1_z": correct(t - 4)}}))


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"].update(source="npz", root=str(make_npz(root / "tiny.npz", n_train=96, n_test=30, classes=3,
                                                         y_train=[i % 3 for i in range(96)],
                                                         y_test=[i % 3 for i in range(30)])))
    raw["ablation"].update(epochs=[3, 30], seeds=[0, 1], temperatures=[0.1, 0.5, 1.0], heads=["none", "linear", "mlp"], batch_sizes=[32, 512],
                           augment_pairs=["crop", "color", "crop+color", "color+crop"])
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    run(stage_command("prepare", scripts=ROOT), root)
    write_stage_outputs(root)
    run(stage_command("report", scripts=ROOT), root)
    return root / "reports"


def test_report_has_every_figure_and_a_reading_for_each_ablation(report_dir):
    assert sorted(p.name for p in (report_dir / "figures").iterdir()) == sorted(FIGURES)
    md = (report_dir / "report.md").read_text()
    for name in FIGURES:
        assert f"(figures/{name})" in md
    # each ablation reading is computed from the fixture's numbers
    assert "highest at τ = 0.5 (41.0%)" in md
    assert "Probing h: mlp 40.0%, linear 37.0%, none 33.0%" in md and "linear > none within noise" in md
    assert "the best composition crop then color (41.0%)" in md
    assert "from 35.0% at batch 32 to 39.0% at batch 512" in md
    assert "fine-tuning reaches 47.0% against 38.0% from scratch (+9.0 points, within noise)" in md  # 30 test images
    # the headline opens the report, the params close it, folded
    assert md.split("\n## ")[1].startswith("Headline\n")
    assert md.rstrip().endswith("</details>") and "<details><summary>Params</summary>" in md
    headline = md.split("\n## ")[1]
    for claim in ("projection head (h) is the better", "intermediate NT-Xent temperature", "nonlinear projection head",
                  "composing augmentations", "larger batch", "fine-tuning the pretrained network"):
        assert claim in headline, claim
    assert "**cannot tell**" in headline  # 30 test images: every gap here is within the noise


def test_each_ablation_grid_is_written_as_plot_data(report_dir):
    import pandas as pd

    grids = {p.stem: pd.read_csv(p, dtype={"point": str}) for p in (report_dir / "grids").iterdir()}
    assert sorted(grids) == ["augment", "batch_size", "head", "temperature"]
    # the base point (tau 0.2) is the heads grid's mlp run, as in the report's table
    # one bar per point and budget, the mean over the two seeds
    taus = ["0.1", "0.2", "0.5", "1.0"]
    assert list(grids["temperature"]["point"]) == [f"{t} @{e}ep" for e in (3, 30) for t in taus]
    assert list(grids["temperature"]["top1"]) == [38.0, 40.0, 41.0, 36.0, 48.0, 50.0, 51.0, 46.0]
    assert list(grids["head"]["point"]) == [f"{h} {r} @{e}ep" for e in (3, 30) for h in ("none", "linear", "mlp")
                                            for r in ("h", "g(h)")]
    assert list(grids["head"]["top1"]) == [33.0, 29.0, 37.0, 33.0, 40.0, 36.0, 43.0, 39.0, 47.0, 43.0, 50.0, 46.0]
    assert list(grids["batch_size"]["point"]) == ["32", "128", "512"]  # one budget: no budget in the name
    html = (report_dir / "index.html").read_text()
    assert html.count('src="data:image/png;base64,') == len(FIGURES)


def test_a_missing_ablation_point_is_one_clear_error(report_dir):
    root = report_dir.parent
    moved = root / "metrics/ablation/head/linear/30ep-seed1.json"
    keep = moved.read_bytes()
    moved.unlink()
    try:
        before = (report_dir / "index.html").read_bytes()
        bad = run(stage_command("report", scripts=ROOT), root, check=False)
        assert bad.returncode == 2
        assert bad.stderr.strip() == ("error: metrics/ablation/head/linear/30ep-seed1.json does not exist; "
                                      "run the ablation stages before the report (dvc repro)")
        assert (report_dir / "index.html").read_bytes() == before
    finally:
        moved.write_bytes(keep)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (`make test` installs it)")
def test_index_html_renders_offline_in_headless_chromium(report_dir):
    from playwright.sync_api import sync_playwright

    index = report_dir / "index.html"
    requests, failed = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        page.on("requestfailed", lambda r: failed.append(r.url))
        page.goto(index.as_uri(), wait_until="load")
        images = page.evaluate("() => Array.from(document.images).map(i => ({src: i.src.slice(0, 21), "
                               "loaded: i.complete && i.naturalWidth > 0, width: i.naturalWidth}))")
        first_section = page.evaluate("() => document.querySelector('h1 ~ h2').textContent")
        closed_params = page.evaluate("() => { const d = document.querySelector('details'); "
                                      "return {summary: d.querySelector('summary').textContent, open: d.open}; }")
        shot = Path(os.environ.get("SIMCLR_SCREENSHOT", report_dir.parent / "report.png"))
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert first_section == "Headline"  # the answer before the details
    assert closed_params == {"summary": "Params", "open": False}
    assert len(images) == len(FIGURES)
    assert all(img["loaded"] and img["width"] > 100 for img in images), images
    assert all(img["src"] == "data:image/png;base64" for img in images)
    assert [u for u in requests if not u.startswith(("file://", "data:"))] == []  # nothing off the machine
    assert failed == []


# ---- the cross-experiment view (simclr experiments, report.experiments) -------------------------
def test_experiments_table_from_dvc_api_exp_show():
    """tests/data/exp_show.json: `dvc.api.exp_show()` (dvc 3.67) on the tiny test project after
    `dvc repro`, a commit and one `dvc exp run -S temperature=0.5`."""
    from simclr.report.experiments import experiments_table

    rows = json.loads((ROOT / "tests/data/exp_show.json").read_text())
    metrics = {"metrics/linear_eval.json": ["top1_h", "random_init_top1"],  # top1_h is `file:key` there (shared)
               "metrics/pretrain.json": ["loss", "images_per_second"]}  # images_per_second is bare (unique)
    table = experiments_table(rows, metrics)
    assert list(table["experiment"]) == ["workspace", "master", "jaggy-mean"]
    assert list(table["baseline"]) == ["", "", "master"]
    assert list(table.columns[2:3]) == ["temperature"]  # the only param that differs
    assert list(table["temperature"]) == ["0.5", "0.2", "0.5"]
    assert list(table.columns[3:]) == ["linear_eval:top1_h", "linear_eval:random_init_top1", "pretrain:loss",
                                       "pretrain:images_per_second"]
    assert list(table["linear_eval:top1_h"]) == ["12.5", "15", "12.5"]
    assert "ablation.base.temperature" in experiments_table(rows, metrics, all_params=True).columns


def test_experiments_table_with_no_experiments_is_one_clear_error():
    from simclr.core.errors import SimCLRError
    from simclr.report.experiments import experiments_table

    with pytest.raises(SimCLRError, match="lists no experiments with data; run `dvc exp run` first"):
        experiments_table([{"Experiment": None, "rev": "workspace", "typ": "baseline"}], {"m.json": ["top1_h"]})


# ---- the confusion figure for any class names ----------------------------------------------------
@pytest.mark.parametrize("names", [[str(i) for i in range(10)],  # an .npz without class_names: labels as text
                                   ["sea lion", "hot-air balloon", "NA", "3.0"],
                                   [f"class {i:02d}" for i in range(100)]], ids=["numeric", "spaces", "100"])
def test_the_confusion_figure_draws_the_counts_of_the_csv(tmp_path, names):
    import csv
    import random

    from simclr.report.figures import plot_confusion

    rng = random.Random(0)
    pairs = [(a, a if rng.random() < 0.6 else rng.choice(names)) for a in names for _ in range(5)]
    path = tmp_path / "confusion.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([("actual", "predicted"), *pairs])
    from simclr.report import read_confusion_csv  # what build_report reads the CSV with

    drawn = plot_confusion(read_confusion_csv(path), names, tmp_path / "confusion.png")
    assert list(drawn.index) == names and list(drawn.columns) == names
    with path.open() as f:  # the CSV counted independently, as text
        rows = list(csv.DictReader(f))
    for a in names:
        mine = [r for r in rows if r["actual"] == a]
        for p in names:
            expected = 100 * sum(r["predicted"] == p for r in mine) / len(mine)
            assert abs(drawn.loc[a, p] - expected) < 1e-9, (a, p)
    assert (tmp_path / "confusion.png").stat().st_size > 10_000


@pytest.mark.parametrize("path, stage", [("metrics/linear_eval.json", "linear_eval"),
                                         ("metrics/ablation/temperature/0.5/3ep-seed0.json", "ablate_temperature@0.5-3-0")])
def test_an_input_that_is_not_json_names_the_stage_to_rerun(report_dir, path, stage):
    root = report_dir.parent
    damaged = root / path
    keep = damaged.read_bytes()
    damaged.write_text("{not json")
    try:
        before = (report_dir / "index.html").read_bytes()
        bad = run(stage_command("report", scripts=ROOT), root, check=False)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
        assert bad.stderr.startswith(f"error: {path} is not valid JSON (")
        assert bad.stderr.strip().endswith(f"; rerun `dvc repro -f {stage}`")
        assert (report_dir / "index.html").read_bytes() == before
    finally:
        damaged.write_bytes(keep)
