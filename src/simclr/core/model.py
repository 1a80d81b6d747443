"""The SimCLR network (encoder f + head g) and the ``models/encoder.pt`` file format.

``encoder.pt`` holds only tensors and plain values (loadable with ``weights_only=True``)::

    {"format": "simclr-encoder/1", "config": {...how to rebuild...},
     "encoder": state_dict, "head": state_dict}

BatchNorm weights are always plain-BN names (SyncBatchNorm shares them), so the file loads on
any device without distributed setup.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from simclr.core.atomic import torch_load_weights, torch_save_atomic
from simclr.core.config import Params
from simclr.core.encoders import build_encoder
from simclr.core.errors import CheckpointError
from simclr.core.heads import projection_head

FORMAT = "simclr-encoder/1"


@dataclass(frozen=True)
class ModelConfig:
    encoder: str
    width: int
    cifar_stem: bool
    head: str
    head_hidden_dim: int
    head_out_dim: int
    head_layers: int
    image_size: int

    @classmethod
    def from_params(cls, p: Params) -> "ModelConfig":
        m = p.model
        return cls(m.encoder, m.width, m.cifar_stem, p.head, m.head_hidden_dim, m.head_out_dim,
                   m.head_layers, p.data.image_size)


class SimCLRModel(nn.Module):
    """``forward(x) -> (h, z)``: h = f(x) the representation, z = g(h) the projection."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.encoder = build_encoder(cfg.encoder, cfg.width, cfg.cifar_stem)
        self.head = projection_head(cfg.head, self.encoder.out_dim, cfg.head_hidden_dim, cfg.head_out_dim,
                                    cfg.head_layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return h, self.head(h)


def save_model(model: SimCLRModel, path: str | Path) -> None:
    """Write the whole pretrained model, encoder f and projection head g with its config (what
    :func:`load_model` reads; ``simclr export`` writes f alone as safetensors)."""
    torch_save_atomic(
        {
            "format": FORMAT,
            "config": vars(model.config).copy(),
            "encoder": {k: v.detach().cpu() for k, v in model.encoder.state_dict().items()},
            "head": {k: v.detach().cpu() for k, v in model.head.state_dict().items()},
        },
        path,
    )


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> SimCLRModel:
    """Load a pretrained SimCLR model for downstream use (safe: ``weights_only=True``).

    >>> model = load_model("models/encoder.pt").eval()
    >>> h, z = model(images)          # images: float (B, 3, H, W) in [0, 1]
    >>> features = model.encoder(images)   # h only, for a downstream task
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; run the pretrain stage first (dvc repro pretrain)")
    rerun = "restore it with `dvc checkout models/encoder.pt` or retrain with `dvc repro -f pretrain`"
    try:
        blob = torch_load_weights(path, map_location)
    except Exception as exc:  # torch's own text advises an unsafe load (weights_only=False): never pass it on
        raise CheckpointError(f"{path} is not a readable encoder file ({type(exc).__name__}: corrupt, truncated "
                              f"or not written by this pipeline); {rerun}") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} file; {rerun}")
    try:
        model = SimCLRModel(ModelConfig(**blob["config"]))
        model.encoder.load_state_dict(blob["encoder"])
        model.head.load_state_dict(blob["head"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is a damaged {FORMAT} file ({type(exc).__name__}); {rerun}") from None
    return model
