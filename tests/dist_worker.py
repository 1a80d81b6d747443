"""Run under `torchrun --nproc_per_node 2`: one DDP step of the loop's loss vs one process.

Every rank computes the single-process reference (the plain model, the whole global batch,
`nt_xent_loss`) and the distributed loss (DDP via Accelerate, this rank's shard,
`global_nt_xent_loss`), then rank 0 writes both losses and the max gradient difference to
argv[1]. argv[2] picks the gather: `with_grad` (ours) or `without_grad` (the common bug).

The model has no BatchNorm: per-process BN statistics (SyncBN is CUDA-only) would make the
two computations differ for a reason unrelated to the gather.
"""

import json
import sys
from datetime import timedelta

import torch
import torch.distributed as dist
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs
from torch import nn

from simclr.core.distributed import gather_with_grad
from simclr.core.loss import global_nt_xent_loss, nt_xent_loss



def gather_without_grad(x):
    """The common mistake this test shows is wrong: all_gather returns tensors without gradients,
    so only this rank's own rows carry them back."""
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x.contiguous())
    out[dist.get_rank()] = x
    return torch.cat(out)


out_path, mode = sys.argv[1], sys.argv[2]
acc = Accelerator(cpu=True, kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=60))])
rank, world = acc.process_index, acc.num_processes
torch.manual_seed(0)
N, b = 8, 8 // world
views1, views2 = torch.randn(N, 3, 4, 4, dtype=torch.float64), torch.randn(N, 3, 4, 4, dtype=torch.float64)


def make_model():
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 32), nn.ReLU(), nn.Linear(32, 16)).double()


reference = make_model()
z = reference(torch.cat([views1, views2]))
ref_loss = nt_xent_loss(*z.chunk(2), 0.5)
ref_loss.backward()
ref_grads = [p.grad.clone() for p in reference.parameters()]

model = acc.prepare(make_model())
shard = slice(rank * b, (rank + 1) * b)
z = model(torch.cat([views1[shard], views2[shard]]))
gather = gather_with_grad if mode == "with_grad" else gather_without_grad
loss = global_nt_xent_loss(*z.chunk(2), 0.5, gather=gather)
acc.backward(loss)
mean_loss = acc.reduce(loss.detach(), reduction="mean").item()
max_diff = max((p.grad - g).abs().max().item() for p, g in zip(model.parameters(), ref_grads))
if rank == 0:
    json.dump({"world": world, "loss": mean_loss, "reference_loss": ref_loss.item(), "max_grad_diff": max_diff,
               "max_grad": max(g.abs().max().item() for g in ref_grads)}, open(out_path, "w"))
acc.end_training()
