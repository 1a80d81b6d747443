"""Encoders f(.): x -> h, the pooled representation used downstream.

* ``resnet18/34/50``: torchvision ResNets. With ``cifar_stem`` (for 32x32 inputs, as in the
  paper's CIFAR experiments, Appendix B.9) the 7x7 stride-2 conv becomes a 3x3 stride-1 conv
  and the max-pool is removed. The classifier is dropped: h is the global-average-pooled
  output (512-d for 18/34, 2048-d for 50).
* ``small_cnn``: four 3x3 conv-BN-ReLU layers (widths w, 2w, 4w, 8w; the last three stride 2)
  and global average pooling; h is 8w-d. The CPU default: ~40x fewer FLOPs than ResNet-18.
"""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, width: int = 32):
        super().__init__()
        layers: list[nn.Module] = []
        channels = [3, width, 2 * width, 4 * width, 8 * width]
        for i in range(4):
            layers += [
                nn.Conv2d(channels[i], channels[i + 1], 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                nn.BatchNorm2d(channels[i + 1]),
                nn.ReLU(inplace=True),
            ]
        self.features = nn.Sequential(*layers)
        self.out_dim = channels[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


def build_encoder(name: str, width: int = 32, cifar_stem: bool = True) -> nn.Module:
    """An encoder with attribute ``out_dim``; ``forward(x) -> h`` of shape (B, out_dim)."""
    if name == "small_cnn":
        return SmallCNN(width)
    from torchvision import models

    net = {"resnet18": models.resnet18, "resnet34": models.resnet34, "resnet50": models.resnet50}[name](weights=None)
    if cifar_stem:
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    out_dim = net.fc.in_features
    net.fc = nn.Identity()
    net.out_dim = out_dim
    return net
