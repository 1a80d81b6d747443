"""The linear_eval stage: probe settings chosen on a validation split held out of train, test scored once."""

import json

import numpy as np
import yaml
from support import prepared_project, run, stage_command

from simclr.core.data import load_prepared, validation_split
from simclr.finetune import labelled_subset


def test_the_validation_split_is_class_balanced_seeded_and_disjoint_from_what_the_probe_trains_on():
    y = np.array([0] * 50 + [1] * 20 + [2] * 7 + [3] * 1)  # uneven classes, one with a single image
    fit, val = validation_split(y, 0.1, 4, seed=0)
    assert not set(fit) & set(val) and sorted([*fit, *val]) == list(range(len(y)))  # disjoint, together the split
    assert [int((y[val] == c).sum()) for c in range(4)] == [5, 2, 1, 0]  # round(0.1 n), at least 1, never a whole class
    assert all((y[fit] == c).any() for c in range(4))  # every class keeps images to train the probe on
    again, other = validation_split(y, 0.1, 4, seed=0)[1], validation_split(y, 0.1, 4, seed=1)[1]
    assert np.array_equal(val, again) and not np.array_equal(val, other)
    # its own random stream: not the images finetune labels with the same seed
    assert not np.array_equal(val, labelled_subset(y, 0.1, 4, seed=0))


def test_the_stage_chooses_on_validation_and_scores_the_test_split_once(tmp_path):
    repo = prepared_project(tmp_path / "p", epochs=1, warmup_epochs=0)
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["linear_eval"].update(val_fraction=0.25, search={"epochs": [2, 4], "lr": [0.001, 0.01], "weight_decay": [0.0]})
    (repo / "params.yaml").write_text(yaml.safe_dump(raw))
    run(stage_command("pretrain"), repo)
    out = run(stage_command("linear_eval"), repo).stdout
    m = json.loads((repo / "metrics/linear_eval.json").read_text())
    data = load_prepared(repo / "data/prepared")
    fit, val = validation_split(data.train.y, 0.25, data.num_classes, raw["seed"])
    assert (m["probe_train_images"], m["val_images"], m["test_images"]) == (len(fit), len(val), len(data.test.y))
    assert m["probe_train_images"] + m["val_images"] == len(data.train.y)  # the held-out images are not trained on
    test_images = {img.tobytes() for img in data.test.x}
    assert not any(img.tobytes() in test_images for img in data.train.x[val])  # carved from train, not from test
    assert m["probe_epochs"] in (2, 4) and m["probe_lr"] in (0.001, 0.01) and m["probe_weight_decay"] == 0.0
    for key in ("top1_h", "val_top1_h", "top1_z", "val_top1_z", "random_init_top1", "val_random_init_top1"):
        assert 0 <= m[key] <= 100, key
    # one choice per representation, each made on validation (the log says which)
    assert out.count("chosen on validation") == 3
    # the confusion matrix is the test split's: one row per test image
    assert len((repo / "metrics/confusion.csv").read_text().splitlines()) == 1 + len(data.test.y)
