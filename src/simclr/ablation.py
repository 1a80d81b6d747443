"""The ablation grids: one short pretrain + linear evaluation per grid point.

SimCLR is a paper of ablations (Chen et al. 2020). ``params.yaml: ablation`` names four grids,
each varying one knob of ``ablation.base`` and nothing else:

* ``temperatures``  NT-Xent tau (the paper's Table 5; CIFAR-10 in Appendix B.9).
* ``heads``         projection head none / linear / mlp, each probed on h and on z = g(h)
                    (Section 4.2, Figure 8).
* ``batch_sizes``   the global batch at a fixed number of epochs, lr scaled as pretrain.lr_scaling
                    says (Section 5.1, Figure 9).
* ``augment_pairs`` ``op`` or ``op1+op2`` from the paper's Figure 5 ops. As in the paper
                    (Section 3), the ops are applied to ONE branch only and the other view is
                    the image itself, so each op's effect is not hidden by the others. The
                    paper first crops both branches because ImageNet images differ in size;
                    CIFAR images share one size, so that shared crop is left out here.

Every point trains ``ablation.epochs`` epochs on a fixed seeded subset of
``ablation.train_images`` training images (the short per-point budget that keeps a grid
affordable), with the model and optimiser of ``model`` / ``pretrain``, then probes the frozen
encoder on the whole train split and scores the whole test split. dvc.yaml runs one stage per
point (``ablate_<grid>@<value>``), each writing :func:`metrics_path`, so DVC caches every point
and reruns only the points whose value or shared settings changed.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from simclr.atomic import write_text_atomic
from simclr.errors import SimCLRError
from simclr.params import (
    KNOB_CHECKS,
    LinearEvalParams,
    Params,
    ParamsError,
    augment_pair_ops,
    parse_augment_pair,
    training_param_keys,
)

METRICS_DIR = Path("metrics/ablation")
# grid name in params.yaml -> the point kind (stage ablate_<kind>, folder metrics/ablation/<kind>)
GRIDS = {"temperatures": "temperature", "heads": "head", "batch_sizes": "batch_size", "augment_pairs": "augment"}


@dataclass(frozen=True)
class Point:
    kind: str  # temperature | head | batch_size | augment
    value: Any
    key: str = ""  # the value as written in the stage name and the metrics file name

    def __post_init__(self):
        if not self.key:
            object.__setattr__(self, "key", str(self.value))


def grid_points(params: Params) -> list[Point]:
    ab = params.ablation
    return [Point(kind, value) for grid, kind in GRIDS.items() for value in getattr(ab, grid)]


def metrics_path(point: Point, root: Path = METRICS_DIR) -> Path:
    return root / point.kind / f"{point.key}.json"


def parse_point(kind: str, raw: str) -> Point:
    """A point from the command line (`simclr ablate temperature 0.5`), validated as params are."""
    try:
        return _parse_point(kind, raw)
    except ParamsError as exc:  # the value came from the command line, not from params.yaml
        raise ParamsError(str(exc).removeprefix("params.yaml: ")) from None


def _parse_point(kind: str, raw: str) -> Point:
    key = f"ablation point {kind}"
    if kind in ("temperature", "batch_size"):
        number = float if kind == "temperature" else int
        try:
            value: Any = number(raw)
        except ValueError:
            value = raw
        return Point(kind, KNOB_CHECKS[kind](key, value), raw)
    if kind == "head":
        return Point(kind, KNOB_CHECKS[kind](key, raw))
    if kind == "augment":
        return Point(kind, parse_augment_pair(key, raw))
    raise ParamsError(f"ablation point kind {kind!r} is not allowed; expected one of {', '.join(GRIDS.values())}")


# The keys of pretrain / linear_eval that point_params sets itself: not a point's dependencies.
POINT_OVERRIDES = {"pretrain": ("epochs", "warmup_epochs", "knn_every", "num_processes"), "linear_eval": ("epochs",)}


def point_params(params: Params, point: Point) -> Params:
    """The full configuration of a point: ablation.base with the point's knob, the short budget."""
    ab, base = params.ablation, params.ablation.base
    knobs = dict(temperature=base.temperature, batch_size=base.batch_size, head=base.head,
                 augment=base.augment, augment_spec=base.augment_spec)
    if point.kind == "augment":
        knobs.update(augment=augment_pair_ops(point.value), augment_spec=point.value)
    else:
        knobs[point.kind] = point.value
    pretrain = dataclasses.replace(params.pretrain, epochs=ab.epochs, warmup_epochs=ab.warmup_epochs, knn_every=0,
                                   num_processes=1)
    linear_eval = dataclasses.replace(params.linear_eval, epochs=ab.linear_eval_epochs)
    return dataclasses.replace(params, pretrain=pretrain, linear_eval=linear_eval, **knobs)


def point_param_keys() -> list[str]:
    """The params.yaml keys a point depends on: the ablation stages' params in dvc.yaml."""
    trains = [k.removeprefix("pretrain.") for k in training_param_keys() if k.startswith("pretrain.")]
    pretrain = [f"pretrain.{k}" for k in trains if k not in POINT_OVERRIDES["pretrain"]]
    linear_eval = [f"linear_eval.{f.name}" for f in dataclasses.fields(LinearEvalParams)
                   if f.name not in POINT_OVERRIDES["linear_eval"]]
    return ["seed", "model", "data.image_size", "ablation.epochs", "ablation.warmup_epochs", "ablation.train_images",
            "ablation.linear_eval_epochs", "ablation.base", *pretrain, *linear_eval]


def run_point(params: Params, point: Point, prepared: Path = Path("data/prepared"),
              out: Path | None = None, log=print) -> dict:
    """Pretrain and evaluate one grid point; writes its metrics file atomically."""
    from simclr.augment import AugmentPolicy
    from simclr.data import load_prepared
    from simclr.evaluate import extract_features, knn_top1, linear_probe
    from simclr.model import load_encoder
    from simclr.pretrain import Outputs, pretrain

    out = out or metrics_path(point)
    p = point_params(params, point)
    data = load_prepared(prepared, verify=False)  # pretrain() below checks the checksums before training
    n_train = min(params.ablation.train_images or len(data.train.x), len(data.train.x))
    if p.batch_size > n_train:
        raise SimCLRError(f"ablation point {point.kind}={point.key}: batch_size {p.batch_size} is larger than the "
                          f"{n_train} training images it trains on (ablation.train_images)")
    views = (AugmentPolicy(()), AugmentPolicy(p.augment)) if point.kind == "augment" else None
    log(f"ablation point {point.kind} = {point.key}: temperature {p.temperature}, batch {p.batch_size}, "
        f"head {p.head}, augment {p.augment_spec}{' on one branch' if views else ''}, "
        f"{p.pretrain.epochs} epochs on {n_train} images")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="simclr-ablation-") as tmp:
        tmp = Path(tmp)
        pre = pretrain(p, Outputs(encoder=tmp / "encoder.pt", metrics=tmp / "pretrain.json",
                                  history=tmp / "history.csv", prepared=prepared),
                       train_images=params.ablation.train_images, view_policies=views, checkpoints=False)
        model = load_encoder(tmp / "encoder.pt")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device)
    h_train, z_train = extract_features(model, data.train.x, device)
    h_test, z_test = extract_features(model, data.test.x, device)
    le = p.linear_eval

    def probe(train, test):
        top1, _ = linear_probe(train, data.train.y, test, data.test.y, data.num_classes, le.epochs, le.lr,
                               le.batch_size, le.weight_decay, seed=p.seed)
        return round(top1, 2)

    metrics = {
        "kind": point.kind,
        "value": point.value,
        "top1_h": probe(h_train, h_test),
        "top1_z": probe(z_train, z_test),
        "knn_top1": round(knn_top1(h_train, data.train.y, h_test, data.test.y, data.num_classes, le.knn_k,
                                   le.knn_temperature), 2),
        "loss": round(pre["loss"], 4),
        "epochs": pre["epochs"],
        "train_images": n_train,
        "test_images": int(len(data.test.y)),
        "wall_seconds": round(time.perf_counter() - start, 2),
    }
    write_text_atomic(out, json.dumps(metrics, indent=2) + "\n")
    log("ablation: " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
    return metrics


def read_points(params: Params, root: Path = METRICS_DIR) -> dict[str, list[dict]]:
    """Every point of the current grids, by kind; a missing or malformed file is one clear error."""
    results: dict[str, list[dict]] = {kind: [] for kind in GRIDS.values()}
    for point in grid_points(params):
        path = metrics_path(point, root)
        if not path.is_file():
            raise SimCLRError(f"{path} does not exist; run the ablation stages before the report (dvc repro)")
        try:
            m = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise SimCLRError(f"{path} is not valid JSON ({exc}); rerun `dvc repro -f ablate_{point.kind}@{point.key}`")
        results[point.kind].append({**m, "value": point.value})
    return results
