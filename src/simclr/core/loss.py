"""NT-Xent, the normalized temperature-scaled cross-entropy of SimCLR (Chen et al. 2020, eq. 1).

For 2N views where views k and k+N come from the same image, with z l2-normalised,

    l(i, j) = -log( exp(sim(z_i, z_j)/tau) / sum_{k != i} exp(sim(z_i, z_k)/tau) )

and the loss is the mean of l(i, j) and l(j, i) over all N positive pairs (every view is
an anchor once), i.e. a cross-entropy over 2N-1 candidates per anchor. Always in fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from simclr.core.distributed import gather_with_grad, process_rank


def nt_xent_loss(
    z1: Tensor, z2: Tensor, temperature: float, candidates1: Tensor | None = None,
    candidates2: Tensor | None = None, offset: int = 0,
) -> Tensor:
    """Mean NT-Xent over the anchors in (z1, z2).

    Single process: ``nt_xent_loss(z1, z2, tau)`` with z1, z2 the two views of N images.

    Distributed: the anchors are this process's n local pairs; ``candidates1/2`` are the
    all-gathered (N, d) views of the global batch, in which this process's rows start at
    ``offset``. Each anchor is then contrasted with all 2N-1 other global views, and the mean
    of the per-process losses equals the single-process loss over the global batch.
    """
    z1 = F.normalize(z1.float(), dim=1)
    z2 = F.normalize(z2.float(), dim=1)
    c1 = z1 if candidates1 is None else F.normalize(candidates1.float(), dim=1)
    c2 = z2 if candidates2 is None else F.normalize(candidates2.float(), dim=1)
    n, big_n = z1.shape[0], c1.shape[0]
    anchors = torch.cat([z1, z2])  # (2n, d)
    candidates = torch.cat([c1, c2])  # (2N, d)
    logits = anchors @ candidates.T / temperature  # (2n, 2N)
    local = torch.arange(n, device=z1.device) + offset
    self_index = torch.cat([local, local + big_n])
    positive = torch.cat([local + big_n, local])
    logits = logits.masked_fill(
        F.one_hot(self_index, 2 * big_n).bool(), float("-inf")
    )  # a view is never its own negative
    return F.cross_entropy(logits, positive)


def global_nt_xent_loss(z1: Tensor, z2: Tensor, temperature: float, gather=gather_with_grad) -> Tensor:
    """NT-Xent of this process's pairs against every view of the global batch.

    z1, z2: this process's (b, d) projections of the two views. The views of all processes are
    all-gathered with gradients (rank order), so each positive pair meets the 2(N-1) other
    views of the global batch N = b * world as negatives. With DDP averaging gradients, loss
    and gradients equal the single-process loss over the global batch (tests/test_distributed).
    """
    offset = process_rank() * z1.shape[0]
    return nt_xent_loss(z1, z2, temperature, gather(z1), gather(z2), offset=offset)
