"""Evaluation of a frozen encoder: features once, then a weighted kNN and a linear probe.

* kNN (Wu et al. 2018, used as SimCLR's cheap monitor): cosine similarity to the train bank,
  the k nearest vote with weight exp(sim / T); top-1 of the summed votes.
* Linear probe (the paper's linear evaluation protocol): the encoder frozen, features
  extracted once without augmentation, standardised with train statistics, and a single
  linear layer trained with cross-entropy (Adam, cosine lr); top-1 on the test split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from simclr.core.augment import to_float


@torch.no_grad()
def extract_features(model: nn.Module, images: np.ndarray, device: torch.device, batch_size: int = 512,
                     autocast_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(h, z) for uint8 NHWC images, model in eval mode; returned in fp32 on the CPU."""
    was_training = model.training
    model.eval()
    hs, zs = [], []
    for start in range(0, len(images), batch_size):
        x = to_float(torch.from_numpy(np.array(images[start : start + batch_size])).to(device))
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            h, z = model(x)
        hs.append(h.float().cpu())
        zs.append(z.float().cpu())
    model.train(was_training)
    return torch.cat(hs), torch.cat(zs)


@torch.no_grad()
def knn_predict(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                num_classes: int, k: int = 200, temperature: float = 0.1, chunk: int = 1024) -> torch.Tensor:
    bank = F.normalize(train_feats.float(), dim=1)
    labels = train_labels.long()
    k = min(k, bank.shape[0])
    preds = []
    for start in range(0, test_feats.shape[0], chunk):
        q = F.normalize(test_feats[start : start + chunk].float(), dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)
        weights = (sim / temperature).exp()
        votes = torch.zeros(q.shape[0], num_classes).scatter_add_(1, labels[idx], weights)
        preds.append(votes.argmax(dim=1))
    return torch.cat(preds)


def knn_top1(train_feats, train_labels, test_feats, test_labels, num_classes, k=200, temperature=0.1) -> float:
    pred = knn_predict(train_feats, torch.as_tensor(train_labels), test_feats, num_classes, k, temperature)
    return 100.0 * (pred == torch.as_tensor(test_labels).long()).float().mean().item()


@dataclass(frozen=True, eq=False)
class LinearProbe:
    """A linear layer trained on frozen features, with the train split's standardisation."""

    mean: torch.Tensor
    std: torch.Tensor
    clf: nn.Linear

    @torch.no_grad()
    def top1(self, feats: torch.Tensor, labels) -> tuple[float, torch.Tensor]:
        """(top-1 % on ``feats``, their predictions)."""
        pred = self.clf((feats - self.mean) / self.std).argmax(dim=1)
        return 100.0 * (pred == torch.as_tensor(np.asarray(labels)).long()).float().mean().item(), pred


def train_linear_probe(train_feats: torch.Tensor, train_labels, num_classes: int, epochs: int = 100,
                       lr: float = 1e-3, batch_size: int = 256, weight_decay: float = 1e-5,
                       seed: int = 0) -> LinearProbe:
    """Standardise with the train statistics, then train one linear layer (Adam, cosine lr, seeded)."""
    gen = torch.Generator().manual_seed(seed)
    y_train = torch.as_tensor(np.asarray(train_labels)).long()
    mean, std = train_feats.mean(0), train_feats.std(0).clamp_min(1e-6)
    x_train = (train_feats - mean) / std
    clf = nn.Linear(x_train.shape[1], num_classes)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        clf.reset_parameters()
    opt = torch.optim.Adam(clf.parameters(), lr=lr, weight_decay=weight_decay)
    n = x_train.shape[0]
    steps_per_epoch = math.ceil(n / batch_size)
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            loss = F.cross_entropy(clf(x_train[idx]), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return LinearProbe(mean, std, clf)


def linear_probe(train_feats: torch.Tensor, train_labels, test_feats: torch.Tensor, test_labels,
                 num_classes: int, epochs: int = 100, lr: float = 1e-3, batch_size: int = 256,
                 weight_decay: float = 1e-5, seed: int = 0) -> tuple[float, torch.Tensor]:
    """Train a linear classifier on frozen features; returns (test top-1 %, test predictions)."""
    probe = train_linear_probe(train_feats, train_labels, num_classes, epochs, lr, batch_size, weight_decay, seed)
    return probe.top1(test_feats, test_labels)
