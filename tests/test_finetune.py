"""The finetune stage (the paper's semi-supervised evaluation): the labelled subsets, the stage's
command and metrics, its errors, and the report's reading of it."""

import json

import numpy as np
import pandas as pd
import yaml
from support import ROOT, make_npz, run, stage_command

from simclr.core.correctness import unpack
from simclr.core.model import ModelConfig, SimCLRModel, save_model
from simclr.finetune import labelled_subset
from simclr.report.readings import read_finetune
from simclr.report.tables import finetune_table


def test_labelled_subset_is_class_balanced_seeded_and_nested():
    y = np.repeat(np.arange(4), [100, 50, 10, 1])
    small, large = labelled_subset(y, 0.1, 4, seed=0), labelled_subset(y, 0.5, 4, seed=0)
    assert np.bincount(y[small], minlength=4).tolist() == [10, 5, 1, 1]  # at least one image of every class
    assert np.bincount(y[large], minlength=4).tolist() == [50, 25, 5, 1]
    assert set(small) <= set(large)  # a smaller fraction's images are among a larger one's
    assert np.array_equal(small, labelled_subset(y, 0.1, 4, seed=0))
    assert not np.array_equal(small, labelled_subset(y, 0.1, 4, seed=1))
    assert np.array_equal(labelled_subset(y, 1.0, 4, seed=0), np.arange(len(y)))


def setup(tmp_path, **finetune):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"].update(source="npz", root=str(make_npz(tmp_path / "tiny.npz", n_train=120, n_test=40)))
    raw["finetune"].update(steps=3, batch_size=16, **finetune)
    raw["linear_eval"].update(epochs=2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    run(stage_command("prepare", scripts=ROOT, prepared=tmp_path / "prepared"), cwd=tmp_path)
    cfg = ModelConfig("small_cnn", 4, True, "mlp", 16, 8, 2, 32)
    save_model(SimCLRModel(cfg), tmp_path / "encoder.pt")


def finetune(tmp_path, fraction, check=True):
    cmd = stage_command("finetune", fraction, scripts=ROOT, prepared=tmp_path / "prepared",
                        encoder=tmp_path / "encoder.pt", finetune=tmp_path / "finetune")
    return run(cmd, cwd=tmp_path, check=check)


def test_finetune_stage_writes_the_three_scores_and_is_deterministic(tmp_path):
    setup(tmp_path)
    finetune(tmp_path, "0.25")
    out = tmp_path / "finetune/0.25.json"
    m = json.loads(out.read_text())
    y = np.load(tmp_path / "tiny.npz")["y_train"]
    assert m["label_fraction"] == 0.25 and m["steps"] == 3 and m["test_images"] == 40
    assert m["labelled_images"] == len(labelled_subset(y, 0.25, 10, seed=0))
    for key in ("finetune_top1", "scratch_top1", "linear_top1"):
        assert 0 <= m[key] <= 100
    assert m["gain_over_scratch"] == round(m["finetune_top1"] - m["scratch_top1"], 2)
    correct = json.loads((tmp_path / "finetune/0.25-correct.json").read_text())["correct"]
    assert set(correct) == {"finetune_top1", "scratch_top1", "linear_top1"}
    for key, bits in correct.items():  # one bit per test image, agreeing with the top-1
        assert len(unpack(bits)) == 40 and round(100 * unpack(bits).mean(), 2) == m[key], key
    finetune(tmp_path, "0.25")
    again = json.loads(out.read_text())
    assert {k: v for k, v in again.items() if k != "wall_seconds"} == {k: v for k, v in m.items() if k != "wall_seconds"}


def test_bad_fraction_is_one_error(tmp_path):
    setup(tmp_path)
    proc = finetune(tmp_path, "1.5", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: finetune label fraction = 1.5 is not allowed; "
                                                "expected a finite number in (0.0, 1.0]"], proc.stderr
    assert not (tmp_path / "finetune").exists()


def test_bad_label_fractions_in_params_are_one_error(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["finetune"]["label_fractions"] = [0.1, 0]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    proc = run(stage_command("check_params", scripts=ROOT, params_ok=tmp_path / "ok"), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "finetune.label_fractions[1] = 0" in proc.stderr, proc.stderr


def rows(*triples, n=1000):
    return [{"label_fraction": f, "labelled_images": int(f * 5000), "finetune_top1": a, "scratch_top1": b,
             "linear_top1": c, "gain_over_scratch": round(a - b, 2), "test_images": n} for f, a, b, c in triples]


def test_reading_calls_a_gap_within_noise_what_it_is():
    df = finetune_table(rows((0.1, 46.0, 38.0, 42.0), (0.01, 26.0, 25.0, 30.0)))
    assert df["label_fraction"].tolist() == [0.01, 0.1]
    text = read_finetune(df, 1000)
    assert "With 1% of the labels (50 images) fine-tuning reaches 26.0% against 25.0% from scratch (+1.0 points, within noise)" in text
    assert "with 10% of the labels (500 images)" in text and "(+8.0 points, beyond noise)" in text
    assert "this run does not show that at every fraction" in text
    both = read_finetune(finetune_table(rows((0.1, 46.0, 38.0, 42.0), (0.5, 60.0, 50.0, 55.0))), 1000)
    assert "this run agrees at every fraction" in both
    reversed_ = read_finetune(finetune_table(rows((0.1, 30.0, 40.0, 42.0))), 1000)
    assert "reversed, beyond noise" in reversed_ and "does not show" in reversed_
    assert isinstance(df, pd.DataFrame)
