"""The ablation grids: params, one point end to end, and the report's readings of the numbers."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from support import ROOT, dvc_paths, init_dvc_repo, make_npz, run, stage_command

from simclr.ablation import point_params
from simclr.core.augment_config import augment_pair_ops
from simclr.core.config import ParamsError, validate
from simclr.core.correctness import unpack
from simclr.core.grids import GRIDS, Point, grid_points, parse_point, point_file
from simclr.report import readings as R
from simclr.report import statistics as S
from simclr.report import tables as T


def shipped() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def with_ablation(**changes) -> dict:
    raw = shipped()
    raw["ablation"] = {**raw["ablation"], **changes}
    return raw


@pytest.mark.parametrize("changes, fragment", [
    ({"augment_pairs": ["crop+crop"]}, "ablation.augment_pairs[0] = 'crop+crop' is not allowed; expected two different ops"),
    ({"augment_pairs": ["warp"]}, "ablation.augment_pairs[0] = 'warp' is not allowed; expected an op or op1+op2"),
    ({"augment_pairs": ["crop+color+blur"]}, "expected an op or op1+op2 with ops from crop, cutout, color"),
    ({"temperatures": [0.1, 0.1]}, "ablation.temperatures = [0.1, 0.1] is not allowed; expected a list without repeated"),
    ({"temperatures": 0.5}, "ablation.temperatures = 0.5 is not allowed; expected a list (may be empty)"),
    ({"heads": ["mlp", "deep"]}, "ablation.heads[1] = 'deep' is not allowed; expected one of none, linear, mlp"),
    ({"batch_sizes": [1]}, "ablation.batch_sizes[0] = 1 is not allowed; expected an integer >= 2"),
    ({"train_images": 200, "batch_sizes": [32, 256]},
     "ablation.batch_sizes[1] = 256 is not allowed; expected at most ablation.train_images (200)"),
    ({"warmup_epochs": 9, "epochs": [5, 3]}, "ablation.warmup_epochs = 9 is not allowed; expected <= the shortest ablation.epochs (3)"),
    ({"epochs": 3}, "ablation.epochs = 3 is not allowed; expected a non-empty list"),
    ({"epochs": []}, "ablation.epochs = [] is not allowed; expected a non-empty list"),
    ({"epochs": [3, 0]}, "ablation.epochs[1] = 0 is not allowed; expected an integer >= 1"),
    ({"seeds": [0, 0]}, "ablation.seeds = [0, 0] is not allowed; expected a list without repeated values"),
    ({"seeds": [-1]}, "ablation.seeds[0] = -1 is not allowed; expected an integer in [0, 2147483647]"),
    ({"epoch": 3}, "ablation.epoch = 3 is not allowed; expected keys of ablation: epochs"),
    ({"base": {"augment": "strong"}}, "ablation.base.augment = 'strong' is not allowed; expected a preset"),
    ({"base": {"temp": 0.5}}, "ablation.base.temp = 0.5 is not allowed; expected keys of ablation.base"),
])
def test_bad_ablation_params_name_key_value_and_what_is_allowed(changes, fragment):
    with pytest.raises(ParamsError) as err:
        validate(with_ablation(**changes))
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_empty_grids_turn_a_figure_off():
    p = validate(with_ablation(temperatures=[], heads=[], batch_sizes=[], augment_pairs=["crop"]))
    assert grid_points(p) == [Point("augment", "crop", p.ablation.epochs[0], s) for s in p.ablation.seeds]


def test_the_head_and_temperature_grids_run_at_every_budget_and_every_point_at_every_seed():
    p = validate(with_ablation(epochs=[2, 6], seeds=[0, 5], temperatures=[0.5], heads=["mlp"], batch_sizes=[32],
                               augment_pairs=["crop"]))
    got = {(q.kind, q.epochs, q.seed) for q in grid_points(p)}
    every_budget = [grid.kind for grid in GRIDS if grid.every_budget]
    assert every_budget == ["temperature", "head"]  # as params declares them (core/ablation_config.py)
    assert got == {(k, e, s) for k in every_budget for e in (2, 6) for s in (0, 5)} | {
        (k, 2, s) for k in ("batch_size", "augment") for s in (0, 5)}
    assert len(grid_points(p)) == len(got)


def test_a_point_changes_one_knob_of_the_base_and_takes_the_short_budget():
    p = validate(shipped())
    base = p.ablation.base
    t = point_params(p, Point("temperature", 1.0, 5, 7))
    assert (t.temperature, t.batch_size, t.head, t.augment) == (1.0, base.batch_size, base.head, base.augment)
    assert (t.pretrain.epochs, t.pretrain.warmup_epochs, t.seed) == (5, p.ablation.warmup_epochs, 7)
    assert t.pretrain.lr == p.pretrain.lr and t.linear_eval.epochs == p.ablation.linear_eval_epochs
    a = point_params(p, Point("augment", "crop+color", 3, 0))
    assert [op.name for op in a.augment] == ["crop", "flip", "color", "grayscale"]
    assert a.temperature == base.temperature
    assert [op.name for op in augment_pair_ops("sobel+rotate")] == ["sobel", "rotate"]


def test_points_keep_the_value_as_written_for_the_file_name():
    assert parse_point("temperature", "1.0", 3, 0) == Point("temperature", 1.0, 3, 0, "1.0")
    root = Path("metrics/ablation")
    assert (point_file(root, parse_point("augment", "crop+color", 3, 1)).as_posix()
            == "metrics/ablation/augment/crop+color/3ep-seed1.json")
    assert point_file(root, Point("batch_size", 512, 10, 0)).as_posix() == "metrics/ablation/batch_size/512/10ep-seed0.json"
    assert Point("temperature", 1.0, 3, 2, "1.0").stage == "ablate_temperature@1.0-3-2"
    with pytest.raises(ParamsError, match="ablation point temperature = 'hot' is not allowed"):
        parse_point("temperature", "hot", 3, 0)
    with pytest.raises(ParamsError, match="ablation point --seed = -2 is not allowed"):
        parse_point("temperature", "0.5", 3, -2)


def test_dvc_yaml_declares_the_point_file_the_code_writes():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    plots = {name: spec for entry in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"] if isinstance(entry, dict)
             for name, spec in entry.items()}
    assert {name for name in stages if name.startswith("ablate_")} == {f"ablate_{g.kind}" for g in GRIDS}
    for grid, kind, every_budget in ((g.key, g.kind, g.every_budget) for g in GRIDS):  # from params' declaration
        assert plots[f"ablation_{kind}"]["y"] == {f"${{paths.report}}/grids/{kind}.csv": "point"}  # the report writes it
        stage = stages[f"ablate_{kind}"]
        item, epochs, seed = stage["matrix"]  # DVC names the stage ablate_<kind>@<value>-<epochs>-<seed> (Point.stage)
        assert (epochs, seed) == ("epochs", "seed")
        assert stage["matrix"][item] == f"${{ablation.{grid}}}"
        assert stage["matrix"]["epochs"] == ("${ablation.epochs}" if every_budget else ["${ablation.epochs[0]}"])
        assert stage["matrix"]["seed"] == "${ablation.seeds}"
        out = point_file(Path("${paths.ablation}"), Point(kind, f"${{item.{item}}}", "${item.epochs}",
                                                          "${item.seed}")).as_posix()
        record = out.replace("${paths.ablation}", "${paths.ablation_correct}", 1)
        assert stage["cmd"].split() == ["python", "stages/ablate.py", kind, f"${{item.{item}}}", "--epochs",
                                        "${item.epochs}", "--seed", "${item.seed}", "--prepared", "${paths.prepared}",
                                        "--out", out, "--correct", record]
        assert "metrics" not in stage  # plain outputs: `dvc exp show` keeps to the headline metrics
        assert [next(iter(o)) for o in stage["outs"]] == [out, record]
        assert not any(str(p).startswith(f"ablation.{grid}") for p in stage["params"])  # one point, not the list


def test_one_point_end_to_end_and_a_bad_value_is_one_line(tmp_path):
    raw = shipped()
    raw["data"].update(source="npz", root=str(make_npz(tmp_path / "tiny.npz", n_train=96, n_test=40)))
    raw["model"].update(width=4, head_hidden_dim=16, head_out_dim=8)
    raw["ablation"].update(epochs=[1], warmup_epochs=0, linear_eval_epochs=2, base={**raw["ablation"]["base"], "batch_size": 32})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    run(stage_command("prepare", scripts=ROOT), tmp_path)
    point = {"ops": "sobel+rotate", "epochs": 1, "seed": 1}
    done = run(stage_command("ablate_augment", point, scripts=ROOT), tmp_path)
    m = json.loads((tmp_path / dvc_paths()["ablation"] / "augment/sobel+rotate/1ep-seed1.json").read_text())
    # numbers only: the grid and the value are the file's path
    assert set(m) == {"top1_h", "top1_z", "knn_top1", "loss", "train_images", "wall_seconds"}
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in m.values()) and m["train_images"] == 96
    # which test images each probe got right: the same path under ablation_correct
    correct = json.loads((tmp_path / dvc_paths()["ablation_correct"] / "augment/sobel+rotate/1ep-seed1.json").read_text())
    correct = correct["correct"]
    assert set(correct) == {"top1_h", "top1_z"}
    for key, bits in correct.items():  # one bit per test image, in the split's order, agreeing with the top-1
        assert len(unpack(bits)) == 40 and round(100 * unpack(bits).mean(), 2) == m[key], key
    assert "on one branch" in done.stdout
    bad = run(stage_command("ablate_head", {"h": "deep", "epochs": 1, "seed": 0}, scripts=ROOT), tmp_path, check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: ablation point head = 'deep' is not allowed; expected one of none, linear, mlp"
    assert not (tmp_path / "metrics/ablation/head").exists()


# ---- the readings are computed from the numbers ---------------------------------------------
def frame(kind, values, top1, **extra):
    return pd.DataFrame({kind: values, "top1_h": top1, **extra})


def test_temperature_reading_follows_the_numbers():
    agree = R.read_temperature(frame("temperature", [0.1, 0.5, 1.0], [40.0, 55.0, 41.0]), 10000)
    assert "highest at τ = 0.5 (55.0%)" in agree and "this run agrees" in agree
    edge = R.read_temperature(frame("temperature", [0.1, 0.5, 1.0], [60.0, 50.0, 40.0]), 10000)
    assert "does not show that: the best τ is at the edge of the grid (best inside the grid τ = 0.5 (50.0%)" in edge
    close = R.read_temperature(frame("temperature", [0.1, 0.2, 1.0], [47.0, 46.5, 40.0]), 10000)
    assert "best inside the grid τ = 0.2 (46.5%) vs best at an edge τ = 0.1 (47.0%" in close
    assert close.endswith("so this run cannot tell.")  # the edge leads, but within noise: no optimum shown either way
    noise = R.read_temperature(frame("temperature", [0.1, 0.5, 1.0], [40.0, 41.0, 40.5]), 1000)
    assert "the interval covers 0" in noise and "cannot tell" in noise


def test_head_reading_follows_the_numbers():
    paper = frame("head", ["none", "linear", "mlp"], [50.0, 56.0, 62.0], top1_z=[50.0, 45.0, 48.0])
    text = R.read_heads(paper, 10000)
    assert "mlp > linear holds (+6.0 ± 1.4 points), linear > none holds (+6.0 ± 1.4 points)" in text
    assert "this run agrees" in text
    reversed_ = frame("head", ["none", "linear", "mlp"], [62.0, 56.0, 55.5], top1_z=[62.0, 58.0, 57.0])
    text = R.read_heads(reversed_, 10000)
    assert "mlp > linear within noise (-0.5 ± 1.4 points), linear > none is reversed (-6.0 ± 1.4 points)" in text
    assert "at the ablation budget this run contradicts it" in text  # g(h) ahead by 2 and 1.5 points at 10,000 images
    close = frame("head", ["linear", "mlp"], [56.0, 57.0], top1_z=[56.5, 56.0])
    assert "at the ablation budget this run cannot tell (within noise)" in R.read_heads(close, 1000)
    two = R.head_order_finding(close, 1000)
    assert two.claim == "a nonlinear projection head beats a linear head (Figure 8, in part)" and two.verdict == S.CANNOT_TELL


def test_augment_matrix_and_reading():
    rows = [{"value": "crop", "top1_h": 40.0}, {"value": "color", "top1_h": 38.0},
            {"value": "crop+color", "top1_h": 55.0}, {"value": "color+crop", "top1_h": 50.0}]
    table = T.augment_matrix(rows)
    assert list(table.index) == ["crop", "color"] and table.loc["crop", "crop"] == 40.0
    assert table.loc["crop", "color"] == 55.0 and table.loc["color", "crop"] == 50.0
    assert "this run agrees on both" in R.read_augment(table, 10000)
    only = T.augment_matrix(rows[:3])
    assert "crop and colour is the only composition in this grid" in R.read_augment(only, 10000)
    rows[2]["top1_h"], rows[3]["top1_h"] = 30.0, 31.0
    assert "does not show composition helping" in R.read_augment(T.augment_matrix(rows), 10000)


def test_batch_size_reading_follows_the_numbers():
    up = frame("batch_size", [32, 128, 512], [40.0, 45.0, 52.0])
    assert "At a fixed 4 epochs" in R.read_batch_size(up, 10000, 4) and "this run agrees" in R.read_batch_size(up, 10000, 4)
    assert R.batch_size_finding(up, 10000).verdict == S.REPRODUCED
    down = frame("batch_size", [32, 128, 512], [52.0, 45.0, 40.0])
    assert "this run does not" in R.read_batch_size(down, 10000, 4)
    assert R.batch_size_finding(down, 10000).verdict == S.NOT_REPRODUCED
    flat = frame("batch_size", [32, 512], [45.0, 45.5])
    assert "within noise" in R.read_batch_size(flat, 1000, 4) and R.batch_size_finding(flat, 1000).verdict == S.CANNOT_TELL


def test_the_headline_findings_use_the_noise_test():
    assert R.temperature_finding(frame("temperature", [0.1, 0.5, 1.0], [40.0, 55.0, 41.0]), 10000).verdict == S.REPRODUCED
    assert R.temperature_finding(frame("temperature", [0.1, 0.5, 1.0], [60.0, 50.0, 40.0]), 10000).verdict == S.NOT_REPRODUCED
    assert R.temperature_finding(frame("temperature", [0.1, 0.5, 1.0], [40.0, 41.0, 40.5]), 1000).verdict == S.CANNOT_TELL
    heads = frame("head", ["none", "linear", "mlp"], [50.0, 56.0, 62.0], top1_z=[50.0, 45.0, 48.0])
    assert R.head_order_finding(heads, 10000).verdict == S.REPRODUCED
    assert R.head_order_finding(heads, 100).verdict == S.CANNOT_TELL  # the same gaps on 100 test images
    # the run's own h vs g(h): +0.3 points is not "agrees" (the sentence the report used to write)
    le = {"top1_h": 53.1, "top1_z": 52.8}
    assert R.h_vs_gh_finding(le, "mlp", 1000).verdict == S.CANNOT_TELL
    assert "cannot tell, within the test-set noise" in R.read_head(le, "mlp", 1000)
    assert "agrees with" in R.read_head({"top1_h": 60.0, "top1_z": 50.0}, "mlp", 1000)
    assert "contradicts" in R.read_head({"top1_h": 50.0, "top1_z": 60.0}, "mlp", 1000)
    assert R.h_vs_gh_finding(le, "none", 1000) is None


# ---- seeds: means with 95% intervals, readings from paired differences -------------------------
def seeded(kind: str, top1: dict, top1_z: dict | None = None, epochs: int = 3) -> list[dict]:
    """Point rows as the report reads them from metric files: one per value and seed."""
    return [{"value": v, "epochs": epochs, "seed": s, "top1_h": t, "top1_z": (top1_z or top1)[v][s], "knn_top1": t - 5,
             "loss": 4.0} for v, per_seed in top1.items() for s, t in per_seed.items()]


def test_t_quantiles_and_the_interval_of_a_mean():
    assert S.t975(1) == 12.706 and S.t975(30) == 2.042
    assert abs(S.t975(60) - 2.000) < 1e-3 and abs(S.t975(120) - 1.980) < 1e-3  # t tables: 2.000, 1.980
    one = S.estimate(50.0, 10000)  # one run: the test error alone, 1.96 * 0.5 points
    assert one.seeds == 1 and abs(one.half - 0.98) < 0.01
    two = S.estimate({0: 49.0, 1: 51.0}, 10000)  # sd 1.414: t(1) * sd / sqrt(2) = 12.706, with the test error
    assert two.mean == 50.0 and abs(two.half - (12.706**2 + 0.98**2) ** 0.5) < 0.01


def test_paired_differences_cancel_what_seeds_share():
    # seed 1 is 10 points better everywhere: unpaired this spread would swamp a steady +2
    a, b = {0: 52.0, 1: 62.0, 2: 57.0}, {0: 50.0, 1: 60.0, 2: 55.0}
    g = S.paired_gap(a, b, 10000)
    assert g.mean == 2.0 and g.seeds == 3 and g.verdict == S.REPRODUCED
    assert abs(g.half - 1.96 * 2 ** 0.5 * 0.4994) < 0.02  # the differences do not vary: the test error alone
    flip = S.paired_gap({0: 52.0, 1: 58.0}, {0: 50.0, 1: 60.0}, 10000)  # +2 then -2: the interval covers 0
    assert flip.mean == 0.0 and flip.verdict == S.CANNOT_TELL


def test_with_two_seeds_the_tables_show_intervals_and_the_readings_use_them():
    # steady: every seed puts τ = 0.5 ahead by 6+ points; noisy: the same means, seeds disagree
    steady = {0.1: {0: 40.0, 1: 41.0}, 0.5: {0: 46.0, 1: 47.5}, 1.0: {0: 39.0, 1: 40.0}}
    noisy = {0.1: {0: 40.0, 1: 41.0}, 0.5: {0: 36.0, 1: 57.5}, 1.0: {0: 39.0, 1: 40.0}}
    for grid, verdict in ((steady, S.REPRODUCED), (noisy, S.CANNOT_TELL)):
        df = T.grid_table(seeded("temperature", grid), "temperature", ["top1_h", "top1_z"])
        assert list(df["seeds"]) == [2, 2, 2] and df.loc[1, "top1_h"] == 46.75
        assert R.temperature_finding(df, 10000).verdict == verdict
        shown = T.shown_table(df, "temperature", ["top1_h", "top1_z"], 10000)
        assert shown.loc[1, "top1_h"] == str(S.estimate(grid[0.5], 10000))  # "46.8 ± ...": mean ± 95% interval
        assert " ± " in shown.loc[0, "top1_h"]
    text = R.read_temperature(T.grid_table(seeded("temperature", noisy), "temperature", ["top1_h"]), 10000)
    assert "over 2 seeds" in text and "cannot tell" in text
    # h - g(h) by seed: +3.0 and +3.2 is beyond the interval (t with 1 degree of freedom is 12.7); +9 and -3 covers 0
    heads = {"linear": {0: 50.0, 1: 52.0}, "mlp": {0: 55.0, 1: 57.0}}
    ahead = T.grid_table(seeded("head", heads, {"linear": {0: 47.0, 1: 48.8}, "mlp": {0: 52.0, 1: 53.8}}), "head",
                         ["top1_h", "top1_z"])
    assert R.head_gap_finding(ahead, 10000).verdict == S.REPRODUCED
    mixed = T.grid_table(seeded("head", heads, {"linear": {0: 41.0, 1: 55.0}, "mlp": {0: 46.0, 1: 60.0}}), "head",
                         ["top1_h", "top1_z"])
    finding = R.head_gap_finding(mixed, 10000)
    assert finding.verdict == S.CANNOT_TELL and "mlp head: h − g(h) +3.0 ± " in finding.evidence
    behind = T.grid_table(seeded("head", heads, {"linear": {0: 53.0, 1: 55.2}, "mlp": {0: 58.0, 1: 60.2}}), "head",
                          ["top1_h", "top1_z"])
    assert R.head_gap_finding(behind, 10000).verdict == S.NOT_REPRODUCED


def test_budgets_are_read_apart():
    rows = seeded("temperature", {0.1: {0: 40.0, 1: 40.0}, 0.5: {0: 39.0, 1: 39.0}}, epochs=3) + seeded(
        "temperature", {0.1: {0: 50.0, 1: 50.0}, 0.5: {0: 55.0, 1: 55.0}}, epochs=30)
    df = T.grid_table(rows, "temperature", ["top1_h"])
    assert list(zip(df["epochs"], df["temperature"])) == [(3, 0.1), (3, 0.5), (30, 0.1), (30, 0.5)]
    assert T.at_budget(df, 30)["top1_h"].tolist() == [50.0, 55.0]
    text = R.read_budgets(df, None, 10000)
    assert text.startswith("The best τ by budget: 0.1 after 3 epochs") and "0.5 after 30 epochs" in text
    with_z = R.read_budgets(T.grid_table(rows, "temperature", ["top1_h", "top1_z"]), None, 10000)
    assert "h − g(h) by τ after 30 epochs: τ 0.1 +0.0 ± " in with_z  # the fixture's z equals h


@pytest.mark.slow
def test_the_run_cache_serves_a_point_seen_before(tmp_path):
    """A point's file is a cached output: DVC run-caches no stage with an uncached plain output."""
    repo, env = init_dvc_repo(tmp_path)

    def repro_with(probe_epochs):
        raw = yaml.safe_load((repo / "params.yaml").read_text())
        raw["ablation"]["linear_eval_epochs"] = probe_epochs
        (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        return run(["dvc", "repro", stage], repo, env).stdout

    params = validate(yaml.safe_load((repo / "params.yaml").read_text()))
    point = Point("head", "mlp", params.ablation.epochs[0], params.ablation.seeds[0])
    stage, path = point.stage, repo / point_file(Path(dvc_paths()["ablation"]), point)
    first = repro_with(1)
    before = path.read_bytes()
    assert f"Running stage '{stage}'" in repro_with(2)
    assert f"Stage '{stage}' is cached - skipping run" in repro_with(1) and f"Running stage '{stage}'" in first
    assert path.read_bytes() == before
