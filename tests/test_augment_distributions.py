"""Our batched parameter draws vs torchvision's per-image ones, two-sample Kolmogorov-Smirnov.

torchvision's `get_params` is the reference definition of each op (RandomResizedCrop,
ColorJitter); we draw N samples from each and require the KS statistic below the critical
value at alpha = 0.001 (c(alpha) = 1.95: D < 1.95 * sqrt(2 / N)). A wrong range, a missing
fallback or a skewed sampler moves D far above it (see the control test at the end).
"""

import math

import pytest
import torch
import torchvision.transforms as T

from simclr.core import augment as A

N = 4000
CRITICAL = 1.95 * math.sqrt(2 / N)


def ks_statistic(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = torch.sort(a.double()).values, torch.sort(b.double()).values
    grid = torch.cat([a, b])
    cdf_a = torch.searchsorted(a, grid, right=True).double() / len(a)
    cdf_b = torch.searchsorted(b, grid, right=True).double() / len(b)
    return (cdf_a - cdf_b).abs().max().item()


@pytest.mark.parametrize("size, scale, ratio", [((32, 32), (0.08, 1.0), (3 / 4, 4 / 3)),
                                                 ((32, 32), (0.2, 1.0), (3 / 4, 4 / 3)),
                                                 ((96, 64), (0.08, 1.0), (3 / 4, 4 / 3))])
def test_crop_boxes_match_torchvision_random_resized_crop(size, scale, ratio):
    torch.manual_seed(0)
    img = torch.zeros(3, *size)
    ref = torch.tensor([T.RandomResizedCrop.get_params(img, list(scale), list(ratio)) for _ in range(N)], dtype=torch.float64)
    ours = A.sample_crop_boxes(N, size[0], size[1], scale, ratio, torch.Generator().manual_seed(1)).double()
    # columns: top, left, h, w -- compare area fraction, aspect, and the position of the box
    for name, f in {"area": lambda b: b[:, 2] * b[:, 3] / (size[0] * size[1]), "aspect": lambda b: b[:, 3] / b[:, 2],
                    "top": lambda b: b[:, 0] / size[0], "left": lambda b: b[:, 1] / size[1]}.items():
        d = ks_statistic(f(ours), f(ref))
        assert d < CRITICAL, f"{name}: KS D = {d:.4f} >= {CRITICAL:.4f}"


@pytest.mark.parametrize("s", [0.5, 1.0])
def test_jitter_factors_match_torchvision_color_jitter(s):
    torch.manual_seed(0)
    jitter = T.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)
    draws = [T.ColorJitter.get_params(jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) for _ in range(N)]
    ours = A.sample_jitter_factors(N, s, torch.Generator().manual_seed(1))
    for i, name in enumerate(("brightness", "contrast", "saturation", "hue"), start=1):
        ref = torch.tensor([d[i] for d in draws])
        d = ks_statistic(ours[name], ref)
        assert d < CRITICAL, f"{name}: KS D = {d:.4f}"
    # the order: every position uniformly one of the 4 ops, like torch.randperm(4)
    ref_first = torch.tensor([int(d[0][0]) for d in draws]).bincount(minlength=4).double() / N
    ours_first = ours["order"][:, 0].bincount(minlength=4).double() / N
    assert (ref_first - 0.25).abs().max() < 0.03 and (ours_first - 0.25).abs().max() < 0.03


def test_the_ks_check_does_catch_a_wrong_range():
    """Control: a sampler with scale (0.2, 1) instead of (0.08, 1) fails the same check."""
    torch.manual_seed(0)
    img = torch.zeros(3, 32, 32)
    ref = torch.tensor([T.RandomResizedCrop.get_params(img, [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(N)], dtype=torch.float64)
    wrong = A.sample_crop_boxes(N, 32, 32, (0.2, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(1)).double()
    area = lambda b: b[:, 2] * b[:, 3] / 1024  # noqa: E731
    assert ks_statistic(area(wrong), area(ref)) > CRITICAL
