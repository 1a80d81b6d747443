"""Projection heads g(.) of SimCLR (Chen et al. 2020, Section 2.1 and Figure 8).

* ``none``:   z = h (identity).
* ``linear``: z = W h.
* ``mlp``:    z = W_L ... ReLU(BN(W_1 h)): Linear-BN-ReLU repeated (layers - 1) times, then a
              final Linear to ``out_dim`` (128 in the paper). The paper's finding: the
              representation *before* the head, h, is far better for downstream tasks than z.
"""

from __future__ import annotations

from torch import nn


def projection_head(kind: str, in_dim: int, hidden_dim: int = 2048, out_dim: int = 128, layers: int = 2) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    if kind == "linear":
        return nn.Linear(in_dim, out_dim, bias=False)
    if kind == "mlp":
        blocks: list[nn.Module] = []
        dim = in_dim
        for _ in range(layers - 1):
            blocks += [nn.Linear(dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
            dim = hidden_dim
        blocks.append(nn.Linear(dim, out_dim))
        return nn.Sequential(*blocks)
    raise ValueError(f"head {kind!r}: expected none, linear or mlp")


def head_out_dim(kind: str, in_dim: int, out_dim: int) -> int:
    return in_dim if kind == "none" else out_dim
