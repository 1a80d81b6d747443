"""The linear_eval stage: frozen encoder -> features once -> linear probes on h and z, kNN,
and the same probe on a randomly initialised encoder of the same architecture (the baseline
every gain is read against).

The probe's settings are chosen, not assumed: ``linear_eval.val_fraction`` of each class of the
labelled train split is held out (seeded, :func:`simclr.core.data.validation_split`), every
combination of ``linear_eval.search`` (epochs x lr x weight decay) is trained on the rest and scored
on it, and the best on validation (that same trained probe) is scored on the test split once. Each
representation (h, z, random init) gets its own choice, so no baseline is held to a setting tuned
for another. The kNN bank is the same probe-train rows.
"""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from simclr.core.atomic import write_json_atomic, write_text_atomic
from simclr.core.config import Params, SectionReads
from simclr.core.correctness import top1_and_correct
from simclr.core.data import load_prepared, validation_split
from simclr.core.evaluate import LinearProbe, extract_features, knn_top1, train_linear_probe
from simclr.core.model import SimCLRModel, load_model
from simclr.core.runtime import single_process_device


@dataclass(frozen=True)
class LinearEvalPaths:
    prepared: Path  # inputs
    encoder: Path
    metrics: Path  # outputs
    confusion: Path
    correct: Path  # which test images each probe got right (simclr.core.correctness)


# What the stage reads of linear_eval (it reads it through `READS.view` only): not the fixed
# probe's epochs / lr / weight_decay, which the ablation points and finetune use.
READS = SectionReads("linear_eval", ("batch_size", "knn_k", "knn_temperature", "val_fraction", "search"))


def linear_eval_param_keys() -> list[str]:
    """The params.yaml keys the linear_eval stage depends on: its params in dvc.yaml."""
    return ["seed", *READS.param_keys()]


@dataclass(frozen=True)
class ProbeChoice:
    epochs: int
    lr: float
    weight_decay: float

    def __str__(self) -> str:
        return f"epochs {self.epochs}, lr {self.lr:g}, weight decay {self.weight_decay:g}"


def choose_probe(x_fit: torch.Tensor, y_fit: np.ndarray, x_val: torch.Tensor, y_val: np.ndarray, num_classes: int,
                 le: SimpleNamespace, seed: int) -> tuple[ProbeChoice, float, LinearProbe]:
    """The ``le.search`` combination with the best validation top-1 (the first listed on a tie), that
    top-1 and its trained probe (kept, so the test split is scored without training it again)."""
    best: tuple[ProbeChoice, float, LinearProbe] | None = None
    for epochs, lr, wd in itertools.product(le.search.epochs, le.search.lr, le.search.weight_decay):
        probe = train_linear_probe(x_fit, y_fit, num_classes, epochs, lr, le.batch_size, wd, seed=seed)
        top1, _ = probe.top1(x_val, y_val)
        if best is None or top1 > best[1]:
            best = (ProbeChoice(epochs, lr, wd), top1, probe)
    assert best is not None  # search lists are non-empty (params validation)
    return best


def linear_eval(params: Params, paths: LinearEvalPaths, log=print) -> dict:
    le = READS.view(params)
    device = single_process_device()
    data = load_prepared(paths.prepared)
    model = load_model(paths.encoder).to(device)

    fit, val = validation_split(data.train.y, le.val_fraction, data.num_classes, params.seed)
    y_fit, y_val = data.train.y[fit], data.train.y[val]

    def evaluate(train_feats: torch.Tensor, test_feats: torch.Tensor, name: str):
        """(choice, val top-1, test top-1, test predictions) for one representation of the train split."""
        x_fit, x_val = train_feats[torch.as_tensor(fit)], train_feats[torch.as_tensor(val)]
        choice, val_top1, probe = choose_probe(x_fit, y_fit, x_val, y_val, data.num_classes, le, params.seed)
        log(f"linear_eval: {name}: probe {choice} chosen on validation ({val_top1:.2f}%)")
        top1, pred = probe.top1(test_feats, data.test.y)
        return choice, val_top1, top1, pred

    def knn(train_feats: torch.Tensor, test_feats: torch.Tensor) -> float:
        return knn_top1(train_feats[torch.as_tensor(fit)], y_fit, test_feats, data.test.y, data.num_classes,
                        le.knn_k, le.knn_temperature)

    h_train, z_train = extract_features(model, data.train.x, device)
    h_test, z_test = extract_features(model, data.test.x, device)
    choice_h, val_h, top1_h, pred_h = evaluate(h_train, h_test, "h")
    _, val_z, top1_z, pred_z = evaluate(z_train, z_test, "z = g(h)")
    knn_h = knn(h_train, h_test)

    torch.manual_seed(params.seed)
    random_model = SimCLRModel(model.config).to(device)
    r_train, _ = extract_features(random_model, data.train.x, device)
    r_test, _ = extract_features(random_model, data.test.x, device)
    _, val_random, random_top1, pred_random = evaluate(r_train, r_test, "h of the random-init encoder")
    random_knn = knn(r_train, r_test)

    metrics = {  # test split unless named val_ (the validation split the probe settings were chosen on)
        "top1_h": round(top1_h, 2),
        "top1_z": round(top1_z, 2),
        "knn_top1": round(knn_h, 2),
        "random_init_top1": round(random_top1, 2),
        "random_init_knn_top1": round(random_knn, 2),
        "gain_over_random_init": round(top1_h - random_top1, 2),
        "val_top1_h": round(val_h, 2),
        "val_top1_z": round(val_z, 2),
        "val_random_init_top1": round(val_random, 2),
        "probe_epochs": choice_h.epochs,
        "probe_lr": choice_h.lr,
        "probe_weight_decay": choice_h.weight_decay,
        "feature_dim_h": int(h_train.shape[1]),
        "feature_dim_z": int(z_train.shape[1]),
        "probe_train_images": int(len(fit)),
        "val_images": int(len(val)),
        "test_images": int(len(data.test.y)),
    }
    write_text_atomic(paths.confusion, confusion_csv(data.test.y, pred_h, data.class_names))
    correct = {key: top1_and_correct(pred, data.test.y)[1] for key, pred in
               (("top1_h", pred_h), ("top1_z", pred_z), ("random_init_top1", pred_random))}
    write_json_atomic(paths.correct, {"correct": correct})
    write_json_atomic(paths.metrics, metrics)
    log("linear_eval: " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
    return metrics


def confusion_csv(labels: np.ndarray, pred: torch.Tensor, class_names: list[str]) -> str:
    """One row per test image: its class and the probe's prediction, by name (DVC's confusion plot)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["actual", "predicted"])
    for a, p in zip(labels.tolist(), pred.tolist()):
        w.writerow([class_names[a], class_names[p]])
    return buf.getvalue()
