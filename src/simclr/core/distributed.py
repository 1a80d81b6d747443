"""All-gather *with* gradients, the piece most SimCLR code gets wrong.

``accelerator.gather`` / ``dist.all_gather`` return tensors with no grad_fn, so remote
negatives would be constants and the gradient of the loss w.r.t. local embeddings would miss
every term in which they act as someone else's negative. ``gather_with_grad`` is an autograd
function: forward all-gathers; backward all-reduce-sums the incoming gradient (each rank's
loss depends on every rank's rows) and returns this rank's slice. With DDP averaging the
parameter gradients over R ranks, the result equals the single-process full-batch gradient:
(1/R) * sum_r [R * dL/dz_r * dz_r/dtheta] where L is the mean loss over ranks.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


# gloo reports a dead peer as a plain RuntimeError ("Connection closed by peer ... a remote worker
# crashing"), not as torch.distributed.DistError; these are the texts its and NCCL's failures carry.
_COLLECTIVE_FAILURES = ("Connection closed by peer", "Connection reset by peer", "Timed out waiting", "NCCL error")


def is_collective_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says a collective failed: another process died or did not answer in time."""
    if isinstance(exc, dist.DistError):
        return True
    return isinstance(exc, RuntimeError) and is_distributed() and any(m in str(exc) for m in _COLLECTIVE_FAILURES)


def process_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        world = dist.get_world_size()
        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]
        out = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(out, x.contiguous())
        return torch.cat(out)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` from all ranks along dim 0 (rank order); gradients flow back."""
    if not is_distributed():
        return x
    return _GatherWithGrad.apply(x)
