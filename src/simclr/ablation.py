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

Every point trains its budget (one of ``ablation.epochs``) on a fixed seeded subset of
``ablation.train_images`` of the images ``data.pretrain_on`` names (the short per-point budget that keeps a grid
affordable), with the model and optimiser of ``model`` / ``pretrain``, then probes the frozen
encoder on the whole train split and scores the whole test split with the fixed probe settings
(``linear_eval.lr`` / ``weight_decay``; no choice is made, so no validation split is needed). Its
seed (one of ``ablation.seeds``) seeds everything the point draws: the subset, the init, the order
and the augmentations, so the same seed at two points is a paired comparison. dvc.yaml runs one
stage per point (``ablate_<grid>@<value>-<epochs>-<seed>``, see :mod:`simclr.core.grids`), so DVC
caches every point and reruns only the points whose value or shared settings changed. A point is a configuration like any
other (:func:`point_params`): :func:`simclr.pretrain.pretrain` runs it with no special argument. A
point keeps no checkpoint (``pretrain.checkpoint_dir: ""``): it is short, and two queued
experiments that share a point may run it at the same time.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from simclr.core.atomic import write_json_atomic
from simclr.core.augment_config import augment_pair_ops, describe_ops
from simclr.core.config import Params, SectionReads, training_param_keys
from simclr.core.correctness import top1_and_correct
from simclr.core.data import load_prepared, pretrain_images
from simclr.core.errors import SimCLRError
from simclr.core.evaluate import extract_features, knn_top1, linear_probe
from simclr.core.grids import GRIDS, Point
from simclr.core.model import load_model
from simclr.core.runtime import default_device
from simclr.pretrain import PretrainPaths, pretrain


def point_params(params: Params, point: Point) -> Params:
    """The full configuration of a point: ablation.base with the point's knob, its budget and seed."""
    ab, base = params.ablation, params.ablation.base
    knobs = {grid.kind: getattr(base, grid.kind) for grid in GRIDS}  # each grid's knob at the base
    knobs[point.kind] = augment_pair_ops(point.value) if point.kind == "augment" else point.value
    return params.replace(**knobs, **{
        "seed": point.seed, "pretrain.epochs": point.epochs, "pretrain.warmup_epochs": ab.warmup_epochs,
        "pretrain.knn_every": 0,
        "pretrain.num_processes": 1, "pretrain.train_images": ab.train_images, "pretrain.checkpoint_dir": "",
        "pretrain.log_with": "none",
        "pretrain.augment_views": "one" if point.kind == "augment" else "both",
        "linear_eval.epochs": ab.linear_eval_epochs})


# What a point's probes read of linear_eval: the fixed probe (no choice is made at a point, so
# neither val_fraction nor search). run_point reads linear_eval through POINT_PROBE.view only.
POINT_PROBE = SectionReads("linear_eval", ("epochs", "lr", "batch_size", "weight_decay", "knn_k", "knn_temperature"))


# The keys of pretrain / linear_eval that point_params sets itself: not a point's dependencies.
POINT_OVERRIDES = {"pretrain": ("epochs", "warmup_epochs", "knn_every", "num_processes", "train_images",
                                "augment_views", "checkpoint_dir", "log_with"), "linear_eval": ("epochs",)}


def point_param_keys() -> list[str]:
    """The params.yaml keys a point depends on: the ablation stages' params in dvc.yaml."""
    trains = [k.removeprefix("pretrain.") for k in training_param_keys() if k.startswith("pretrain.")]
    pretrain_keys = [f"pretrain.{k}" for k in trains if k not in POINT_OVERRIDES["pretrain"]]
    linear_eval = POINT_PROBE.param_keys(leave=POINT_OVERRIDES["linear_eval"])
    # not `seed` nor ablation.epochs / seeds: a point's own budget and seed are in its command
    return ["model", "data.image_size", "data.pretrain_on", "ablation.warmup_epochs",
            "ablation.train_images", "ablation.linear_eval_epochs", "ablation.base", *pretrain_keys, *linear_eval]


def run_point(params: Params, point: Point, prepared: Path, out: Path, correct: Path, log=print) -> dict:
    """Pretrain and evaluate one grid point; writes its metrics file ``out`` and which test images each
    probe got right, ``correct`` (:mod:`simclr.core.correctness`), atomically."""
    p = point_params(params, point)
    data = load_prepared(prepared, verify=False)  # pretrain() below checks the checksums before training
    n_train = len(pretrain_images(data, p.data.pretrain_on).subset(p.pretrain.train_images, p.seed))
    if p.batch_size > n_train:
        raise SimCLRError(f"ablation point {point.stage}: batch_size {p.batch_size} is larger than the "
                          f"{n_train} images it pretrains on (ablation.train_images, data.pretrain_on)")
    one_branch = p.pretrain.augment_views == "one"
    log(f"ablation point {point.kind} = {point.key}, seed {point.seed}: temperature {p.temperature}, batch {p.batch_size}, "
        f"head {p.head}, augment {describe_ops(p.augment)}{' on one branch' if one_branch else ''}, "
        f"{p.pretrain.epochs} epochs on {n_train} images")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="simclr-ablation-") as tmp:
        tmp = Path(tmp)
        pre = pretrain(p, PretrainPaths(prepared=prepared, encoder=tmp / "encoder.pt", metrics=tmp / "pretrain.json",
                                        history=tmp / "history.csv"))
        model = load_model(tmp / "encoder.pt")
    device = default_device()
    model = model.to(device)
    h_train, z_train = extract_features(model, data.train.x, device)
    h_test, z_test = extract_features(model, data.test.x, device)
    le = POINT_PROBE.view(p)

    def probe(train, test):
        _, pred = linear_probe(train, data.train.y, test, data.test.y, data.num_classes, le.epochs, le.lr,
                               le.batch_size, le.weight_decay, seed=p.seed)
        return top1_and_correct(pred, data.test.y)

    (top1_h, correct_h), (top1_z, correct_z) = probe(h_train, h_test), probe(z_train, z_test)
    metrics = {  # numbers only: the grid, value, budget and seed are the file's path (simclr.core.grids.point_file)
        "top1_h": round(top1_h, 2),
        "top1_z": round(top1_z, 2),
        "knn_top1": round(knn_top1(h_train, data.train.y, h_test, data.test.y, data.num_classes, le.knn_k,
                                   le.knn_temperature), 2),
        "loss": round(pre["loss"], 4),
        "train_images": n_train,
        "wall_seconds": round(time.perf_counter() - start, 2),
    }
    write_json_atomic(correct, {"correct": {"top1_h": correct_h, "top1_z": correct_z}})
    write_json_atomic(out, metrics)
    log("ablation: " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
    return metrics
