"""Encoders f(.): x -> h, the pooled representation used downstream.

* ``resnet18/34/50``: torchvision ResNets. With ``cifar_stem`` (for 32x32 inputs, as in the
  paper's CIFAR experiments, Appendix B.9) the 7x7 stride-2 conv becomes a 3x3 stride-1 conv
  and the max-pool is removed. The classifier is dropped: h is the global-average-pooled
  output (512-d for 18/34, 2048-d for 50).
* ``small_cnn``: four 3x3 conv-BN-ReLU layers (widths w, 2w, 4w, 8w; the last three stride 2)
  and global average pooling; h is 8w-d. The CPU default: ~40x fewer FLOPs than ResNet-18.
* ``small_resnet``: downsample early, widen late. A 3x3 stride-2 conv-BN-ReLU stem (w channels,
  32x32 -> 16x16), then three ResNet basic blocks (He et al. 2016: two 3x3 conv-BN with an
  identity-or-1x1 shortcut, ReLU after the sum), widths 2w, 4w, 8w, each halving the
  resolution (16 -> 8 -> 4 -> 2 at 32x32), and global average pooling; h is 8w-d. Most of its
  FLOPs sit at low resolution, where a CPU turns them into accuracy fastest (BENCHMARKS.md,
  "The CPU hour").
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


def conv_bn(c_in: int, c_out: int, stride: int, relu: bool = True) -> list[nn.Module]:
    layers = [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out)]
    return layers + [nn.ReLU(inplace=True)] if relu else layers


class BasicBlock(nn.Module):
    """y = relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)), the shortcut a 1x1 conv-BN when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(*conv_bn(c_in, c_out, stride), *conv_bn(c_out, c_out, 1, relu=False))
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class SmallResNet(nn.Module):
    def __init__(self, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(*conv_bn(3, width, 2), BasicBlock(width, 2 * width, 2),
                                      BasicBlock(2 * width, 4 * width, 2), BasicBlock(4 * width, 8 * width, 2))
        self.out_dim = 8 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


def build_encoder(name: str, width: int = 32, cifar_stem: bool = True) -> nn.Module:
    """An encoder with attribute ``out_dim``; ``forward(x) -> h`` of shape (B, out_dim)."""
    if name == "small_cnn":
        return SmallCNN(width)
    if name == "small_resnet":
        return SmallResNet(width)
    from torchvision import models

    net = {"resnet18": models.resnet18, "resnet34": models.resnet34, "resnet50": models.resnet50}[name](weights=None)
    if cifar_stem:
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    out_dim = net.fc.in_features
    net.fc = nn.Identity()
    net.out_dim = out_dim
    return net
