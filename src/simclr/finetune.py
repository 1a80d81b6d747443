"""The finetune stage: the paper's semi-supervised evaluation (Chen et al. 2020, Section 6, Table 7), scaled down.

For one label fraction p, the labelled images are a class-balanced seeded subset of the train
split: ``max(1, round(p * n_c))`` images of each class c, drawn from one seeded order per class,
so a smaller fraction's images are among a larger one's. On those labels only, three models are
trained and each is scored once on the whole test split:

* **fine-tuned**: the pretrained encoder f plus a new linear layer on h, the whole network
  trained. The paper's fine-tuning recipe: SGD with Nesterov momentum, no warmup, no
  regularisation, random crop (with resize) and horizontal flip as the only augmentation. Here
  ``finetune.steps`` steps of ``finetune.batch_size`` images, lr ``finetune.lr`` x batch / 256 (the
  paper's 0.05 x batch / 256) decayed by a cosine (the paper
  trains 60 epochs at 1% and 30 at 10%: a step budget keeps the smaller set from being starved).
* **from scratch**: the same network at random init, the same recipe and steps: the supervised
  baseline the gain of pretraining is read against.
* **linear**: linear_eval's probe (its epochs, lr, batch and weight decay) on the frozen f's h.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from simclr.core.atomic import write_json_atomic
from simclr.core.augment import AugmentPolicy, to_float
from simclr.core.augment_config import parse_augment
from simclr.core.config import FinetuneParams, Params, SectionReads
from simclr.core.correctness import top1_and_correct
from simclr.core.data import ImageRows, class_balanced_rows, load_prepared
from simclr.core.errors import SimCLRError
from simclr.core.evaluate import extract_features, linear_probe
from simclr.core.lars import param_groups
from simclr.core.model import SimCLRModel, load_model
from simclr.core.runtime import single_process_device
from simclr.core.schedule import lr_at, scaled_lr
from simclr.core.validation import Fraction, check_value

FINETUNE_AUGMENT = "crop-flip"  # the paper's only fine-tuning augmentation
# The linear_eval keys the linear baseline reads (through PROBE.view only).
PROBE = SectionReads("linear_eval", ("epochs", "lr", "batch_size", "weight_decay"))


def finetune_param_keys() -> list[str]:
    """The params.yaml keys a finetune point depends on (not the list of fractions): its params in dvc.yaml."""
    return (["seed"] + [f"finetune.{k}" for k in FinetuneParams.model_fields if k != "label_fractions"]
            + PROBE.param_keys())


def parse_fraction(raw: str) -> float:
    """A label fraction from the command line (`python stages/finetune.py 0.1`), checked as params.yaml's are."""
    try:
        value: object = float(raw)
    except ValueError:
        value = raw
    return check_value("finetune label fraction", Fraction, value, source="")


def labelled_subset(y: np.ndarray, fraction: float, num_classes: int, seed: int) -> np.ndarray:
    """Sorted rows of a class-balanced subset: ``max(1, round(fraction * n_c))`` of each class's n_c images."""
    return class_balanced_rows(y, fraction, num_classes, seed)


class Classifier(nn.Module):
    """An encoder f and a linear layer on its h: ``forward(x) -> logits``."""

    def __init__(self, encoder: nn.Module, num_classes: int):
        super().__init__()
        self.encoder = encoder
        self.fc = nn.Linear(encoder.out_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.encoder(x))


def train_classifier(net: Classifier, x: ImageRows | np.ndarray, y: np.ndarray, ft: FinetuneParams, seed: int,
                     device: torch.device) -> Classifier:
    """``ft.steps`` SGD-Nesterov steps on (x, y), crop+flip views, lr ``ft.lr x batch / 256`` decayed by a cosine;
    every parameter trains."""
    net.to(device).train()
    batch = min(ft.batch_size, len(x))
    groups = param_groups(net, ft.weight_decay, lars=False)
    peak_lr = scaled_lr(ft.lr, batch, "linear")  # the paper's rule: 0.05 x batch / 256
    optimizer = torch.optim.SGD(groups, lr=peak_lr, momentum=ft.momentum, nesterov=ft.momentum > 0,
                                weight_decay=ft.weight_decay)
    augment = AugmentPolicy(parse_augment(FINETUNE_AUGMENT))
    order = torch.Generator().manual_seed(seed)
    views = torch.Generator(device=device).manual_seed(seed + 1)
    labels = torch.as_tensor(y).long()
    queue = torch.empty(0, dtype=torch.long)
    for step in range(ft.steps):
        if len(queue) < batch:  # epochs back to back, each a fresh permutation
            queue = torch.cat([queue, torch.randperm(len(x), generator=order)])
        rows, queue = queue[:batch], queue[batch:]
        images = torch.from_numpy(x[rows.numpy()]).to(device)
        loss = F.cross_entropy(net(augment(images, views)), labels[rows].to(device))
        if not math.isfinite(loss.item()):
            raise SimCLRError(f"finetune: loss is {loss.item()} at step {step + 1}; stopped. Lower finetune.lr")
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, ft.steps, 0, peak_lr)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return net


@torch.no_grad()
def predict(net: nn.Module, x: np.ndarray, device: torch.device, batch_size: int = 512) -> np.ndarray:
    net.eval()
    return np.concatenate([net(to_float(torch.from_numpy(np.array(x[start: start + batch_size])).to(device)))
                           .argmax(1).cpu().numpy() for start in range(0, len(x), batch_size)])


def probe_predict(model: SimCLRModel, x: ImageRows | np.ndarray, y: np.ndarray, data, le: SimpleNamespace, seed: int,
                  device: torch.device) -> np.ndarray:
    """The linear probe's predictions on the test split, trained on the frozen h of (x, y)."""
    h_train, _ = extract_features(model, x, device)
    h_test, _ = extract_features(model, data.test.x, device)
    _, pred = linear_probe(h_train, y, h_test, data.test.y, data.num_classes, le.epochs, le.lr, le.batch_size,
                           le.weight_decay, seed=seed)
    return pred.cpu().numpy()


def run_finetune(params: Params, fraction: float, prepared: Path, encoder: Path, out: Path, correct: Path,
                 log=print) -> dict:
    """Fine-tuned vs from scratch vs linear at one label fraction; writes its metrics file ``out`` and which
    test images each got right, ``correct`` (:mod:`simclr.core.correctness`), atomically."""
    ft, seed = params.finetune, params.seed
    device = single_process_device()
    start = time.perf_counter()
    data = load_prepared(prepared)
    pretrained = load_model(encoder)
    rows = labelled_subset(data.train.y, fraction, data.num_classes, seed)
    x, y = ImageRows([data.train.x], rows), data.train.y[rows]  # memory-mapped: read per batch
    log(f"finetune: label fraction {fraction}: {len(rows)} labelled images of {len(data.train.y)} "
        f"({data.num_classes} classes), {ft.steps} steps of batch {min(ft.batch_size, len(rows))}")

    linear, correct_linear = top1_and_correct(
        probe_predict(pretrained.to(device), x, y, data, PROBE.view(params), seed, device), data.test.y)
    torch.manual_seed(seed)  # the new linear layer's init
    tuned = train_classifier(Classifier(pretrained.encoder, data.num_classes), x, y, ft, seed, device)
    finetuned, correct_finetuned = top1_and_correct(predict(tuned, data.test.x, device), data.test.y)
    torch.manual_seed(seed)
    scratch_net = Classifier(SimCLRModel(pretrained.config).encoder, data.num_classes)
    scratch, correct_scratch = top1_and_correct(
        predict(train_classifier(scratch_net, x, y, ft, seed, device), data.test.x, device), data.test.y)

    metrics = {
        "label_fraction": fraction,
        "labelled_images": int(len(rows)),
        "finetune_top1": round(finetuned, 2),
        "scratch_top1": round(scratch, 2),
        "linear_top1": round(linear, 2),
        "gain_over_scratch": round(finetuned - scratch, 2),
        "test_images": int(len(data.test.y)),
        "steps": ft.steps,
        "wall_seconds": round(time.perf_counter() - start, 2),
    }
    write_json_atomic(correct, {"correct": {"finetune_top1": correct_finetuned, "scratch_top1": correct_scratch,
                                            "linear_top1": correct_linear}})
    write_json_atomic(out, metrics)
    log("finetune: " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
    return metrics
