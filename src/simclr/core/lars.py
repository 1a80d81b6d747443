"""LARS: Layer-wise Adaptive Rate Scaling (You et al. 2017), as used by SimCLR.

Per parameter tensor w with gradient g, for a group with ``lars=True``:

    g'    = g + wd * w
    trust = eta * ||w|| / ||g'||      (1 if either norm is 0)
    v     = m * v + lr * trust * g'
    w     = w - v

Groups with ``lars=False`` (SimCLR excludes biases and BatchNorm parameters) skip the
trust ratio (trust = 1) and use their own ``weight_decay`` (0 for those groups), i.e. they
take a plain momentum-SGD step. This is the update of SimCLR's reference LARSOptimizer
(momentum 0.9, eta 0.001, "classic" momentum: lr inside the velocity).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim import Optimizer


class LARS(Optimizer):
    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 1e-6,
                 trust_coefficient: float = 0.001):
        if lr <= 0:
            raise ValueError(f"LARS lr must be > 0, got {lr}")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                        trust_coefficient=trust_coefficient, lars=True)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["weight_decay"]:
                    g = g.add(p, alpha=group["weight_decay"])
                lr = group["lr"]
                if group["lars"]:
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                    trust = torch.where(
                        (w_norm > 0) & (g_norm > 0), group["trust_coefficient"] * w_norm / g_norm,
                        torch.ones_like(w_norm),
                    )
                    g = g * trust
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                v = state["momentum_buffer"]
                v.mul_(group["momentum"]).add_(g, alpha=lr)
                p.sub_(v)
        return loss


def exclude_from_lars(name: str, param: nn.Parameter) -> bool:
    """Biases and normalisation parameters (all 1-d tensors) are excluded, as in SimCLR."""
    return param.ndim <= 1


def param_groups(model: nn.Module, weight_decay: float, lars: bool = True) -> list[dict]:
    """Two groups: weights (decayed, LARS-adapted) and biases/BN (no decay, no adaptation).

    Only plain values in the groups, so optimizer state loads with weights_only=True. ``lars=False``
    leaves out the groups' ``lars`` flag, for SGD and Adam.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if exclude_from_lars(name, p) else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if lars:
        groups[0]["lars"], groups[1]["lars"] = True, False
    return groups
