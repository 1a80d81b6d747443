"""A training step that is applied only if its loss and gradients are finite, decided on the device.

A loop that checks ``math.isfinite(loss.item())`` before each update makes the host wait for
the device every step. Here the check stays a tensor:

    ok_t    = ok_{t-1} and isfinite(loss_t) and isfinite(||grad_t||)      (sticky: once bad, stays bad)
    theta_t = where(ok_t, optimizer_step(theta_{t-1}), theta_{t-1})       (every parameter and state tensor)

and the host reads the record of the first bad step (its number, loss and gradient norm) only
when it reads anyway, every ``pretrain.log_every_steps`` steps and at the end of each epoch
(before the epoch's checkpoint), then stops the run naming that step. This is what
``torch.amp.GradScaler`` does for fp16 overflows with its ``found_inf`` tensor in the fused
optimizers, for any optimizer: the step is computed, then kept or undone with ``torch.where``.
When ``ok`` is true, ``where`` returns the stepped tensors bit for bit, so a healthy run's weights
are exactly those of an unconditional ``optimizer.step()``.

The record is sticky, so no step after the first bad one is applied either, and the weights the
run stops with are those before it.
"""

from __future__ import annotations

import torch
from torch import Tensor


class FiniteGuard:
    """The device-side record of the first step whose loss or gradient norm was not finite."""

    def __init__(self, device: torch.device):
        # [step, loss, gradient norm] of the first bad step; step 0: none yet. float64 holds any step number exactly.
        self.first_bad = torch.zeros(3, dtype=torch.float64, device=device)

    def check(self, step: int, loss: Tensor, grad_norm: Tensor) -> Tensor:
        """Record step ``step`` (1-based); returns the 0-dim bool tensor: apply it?"""
        healthy = self.first_bad[0] == 0
        ok = healthy & torch.isfinite(loss) & torch.isfinite(grad_norm)
        now = torch.stack([torch.full_like(self.first_bad[0], step), loss.double(), grad_norm.double()])
        self.first_bad = torch.where(healthy & ~ok, now, self.first_bad)
        return ok

    def read(self) -> tuple[int, float, float] | None:
        """(step, loss, gradient norm) of the first bad step, or None. A host read-back: call it only
        where the loop reads anyway."""
        step, loss, grad_norm = self.first_bad.tolist()
        return (int(step), loss, grad_norm) if step else None


@torch.no_grad()
def step_if(optimizer: torch.optim.Optimizer, ok: Tensor) -> None:
    """``optimizer.step()`` kept where ``ok`` is true and undone otherwise, without reading ``ok``.

    The parameters and the optimizer's state tensors are saved before the step and restored by
    ``torch.where`` after it; a state tensor the step creates (a momentum buffer on the first step)
    is zeroed instead, which for LARS, SGD and Adam is the same as not having it. State kept on
    another device than ``ok`` (Adam's CPU ``step`` counter on CUDA) is left alone: restoring it
    would cost blocking copies every step, and a bad step stops the run at the next read anyway.
    """
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    before = {id(t): t.clone() for t in _tensors(optimizer, params)}
    optimizer.step()
    for t in _tensors(optimizer, params):
        kept = before.get(id(t))
        t.copy_(torch.where(ok, t, kept if kept is not None else torch.zeros((), dtype=t.dtype, device=t.device)))


def _tensors(optimizer: torch.optim.Optimizer, params: list[Tensor]) -> list[Tensor]:
    state = [v for p in params for v in optimizer.state.get(p, {}).values()
             if isinstance(v, Tensor) and v.device == p.device]
    return params + state
