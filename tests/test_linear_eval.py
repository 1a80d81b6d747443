"""The linear_eval stage: probe settings chosen on a validation split held out of train, test scored once."""

import json
import os
from types import SimpleNamespace

import numpy as np
import torch
import yaml
from support import prepared_project, run, stage_command

from simclr.core.correctness import unpack
from simclr.core.data import load_prepared, validation_split
from simclr.core.evaluate import linear_probe, train_linear_probe
from simclr.finetune import labelled_subset
from simclr.linear_eval import choose_probe


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
    # which test images each probe got right: the report pairs its gaps on them
    correct = json.loads((repo / "metrics/linear_eval_correct.json").read_text())["correct"]
    assert set(correct) == {"top1_h", "top1_z", "random_init_top1"}
    for key, bits in correct.items():
        assert len(unpack(bits)) == len(data.test.y) and round(100 * unpack(bits).mean(), 2) == m[key], key
    predicted_h = [row.split(",")[1] for row in (repo / "metrics/confusion.csv").read_text().splitlines()[1:]]
    assert list(unpack(correct["top1_h"])) == [data.class_names[a] == p for a, p in zip(data.test.y, predicted_h)]
    # outputs are written atomically, with the mode a plain write gives (readable by others sharing the cache)
    mask = os.umask(0)
    os.umask(mask)
    for out in ("metrics/linear_eval.json", "metrics/confusion.csv", "metrics/linear_eval_correct.json", "models/encoder.pt"):
        assert (repo / out).stat().st_mode & 0o777 == 0o666 & ~mask, out


def test_the_test_split_is_scored_by_the_very_probe_chosen_on_validation():
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(120) % 3
    x = torch.randn(120, 8, generator=gen) + 1.5 * torch.nn.functional.one_hot(y, 8).float()
    x_fit, y_fit, x_val, y_val, x_test, y_test = x[:60], y[:60], x[60:90], y[60:90], x[90:], y[90:]
    # listed so the best is not the last one trained: keeping the last probe would show
    grid = {"epochs": [5, 1], "lr": [0.05, 0.001]}
    le = SimpleNamespace(batch_size=16, search=SimpleNamespace(**grid, weight_decay=[0.0]))
    choice, val_top1, probe = choose_probe(x_fit, y_fit.numpy(), x_val, y_val.numpy(), 3, le, seed=0)
    scores = {(e, lr): linear_probe(x_fit, y_fit, x_val, y_val, 3, e, lr, 16, 0.0, seed=0)[0]
              for e in grid["epochs"] for lr in grid["lr"]}
    assert val_top1 == max(scores.values()) == scores[(choice.epochs, choice.lr)]
    assert (choice.epochs, choice.lr) != (1, 0.001)
    # what the stage reports on test is what training the chosen setting afresh gives, bit for bit
    fresh = train_linear_probe(x_fit, y_fit, 3, choice.epochs, choice.lr, 16, 0.0, seed=0)
    assert torch.equal(probe.clf.weight, fresh.clf.weight) and torch.equal(probe.clf.bias, fresh.clf.bias)
    top1, pred = probe.top1(x_test, y_test)
    again, pred_again = linear_probe(x_fit, y_fit, x_test, y_test, 3, choice.epochs, choice.lr, 16, 0.0, seed=0)
    assert top1 == again and torch.equal(pred, pred_again)
