"""The linear_eval stage: frozen encoder -> features once -> linear probes on h and z, kNN,
and the same probe on a randomly initialised encoder of the same architecture (the baseline
every gain is read against)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from simclr.core.atomic import write_text_atomic
from simclr.core.config import Params
from simclr.core.data import load_prepared
from simclr.core.evaluate import extract_features, knn_top1, linear_probe
from simclr.core.model import SimCLRModel, load_encoder
from simclr.core.runtime import configure_cpu


@dataclass(frozen=True)
class LinearEvalPaths:
    prepared: Path  # inputs
    encoder: Path
    metrics: Path  # outputs
    confusion: Path


def linear_eval(params: Params, paths: LinearEvalPaths, log=print) -> dict:
    le = params.linear_eval
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        configure_cpu(1)
    data = load_prepared(paths.prepared)
    model = load_encoder(paths.encoder).to(device)

    def probe(train_feats, test_feats, seed_offset=0):
        return linear_probe(train_feats, data.train.y, test_feats, data.test.y, data.num_classes, le.epochs,
                            le.lr, le.batch_size, le.weight_decay, seed=params.seed + seed_offset)

    h_train, z_train = extract_features(model, data.train.x, device)
    h_test, z_test = extract_features(model, data.test.x, device)
    top1_h, pred_h = probe(h_train, h_test)
    top1_z, _ = probe(z_train, z_test)
    knn = knn_top1(h_train, data.train.y, h_test, data.test.y, data.num_classes, le.knn_k, le.knn_temperature)

    torch.manual_seed(params.seed)
    random_model = SimCLRModel(model.config).to(device)
    r_train, _ = extract_features(random_model, data.train.x, device)
    r_test, _ = extract_features(random_model, data.test.x, device)
    random_top1, _ = probe(r_train, r_test)
    random_knn = knn_top1(r_train, data.train.y, r_test, data.test.y, data.num_classes, le.knn_k, le.knn_temperature)

    metrics = {
        "top1_h": round(top1_h, 2),
        "top1_z": round(top1_z, 2),
        "knn_top1": round(knn, 2),
        "random_init_top1": round(random_top1, 2),
        "random_init_knn_top1": round(random_knn, 2),
        "gain_over_random_init": round(top1_h - random_top1, 2),
        "feature_dim_h": int(h_train.shape[1]),
        "feature_dim_z": int(z_train.shape[1]),
        "test_images": int(len(data.test.y)),
    }
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["actual", "predicted"])
    names = data.class_names
    for a, p in zip(data.test.y.tolist(), pred_h.tolist()):
        w.writerow([names[a], names[p]])
    write_text_atomic(paths.confusion, buf.getvalue())
    write_text_atomic(paths.metrics, json.dumps(metrics, indent=2) + "\n")
    log("linear_eval: " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
    return metrics
