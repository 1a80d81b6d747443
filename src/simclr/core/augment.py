"""SimCLR's augmentations, batched on the training device with per-sample random parameters.

Each op takes a float batch ``(B, 3, H, W)`` in [0, 1] and a ``torch.Generator`` on the same
device, and draws its own parameters for every sample (crop box, flip, jitter factors and
order, grayscale and blur draws), from the same distributions as torchvision's per-image
transforms that the paper's policy is usually written with (Chen et al. 2020, Appendix A):

* ``crop``      RandomResizedCrop(scale=(0.08, 1), ratio=(3/4, 4/3)), bilinear, back to H x W.
* ``flip``      RandomHorizontalFlip(p=0.5).
* ``color``     RandomApply([ColorJitter(0.8s, 0.8s, 0.8s, 0.2s)], p=0.8), the four
                adjustments in a random order per sample.
* ``grayscale`` RandomGrayscale(p=0.2).
* ``blur``      RandomApply([GaussianBlur(k, sigma=(0.1, 2.0))], p=0.5), k about 10% of the
                side (made odd), reflect padding.

The paper's augmentation ablation (its Section 3 and Figure 5) also uses cutout, Gaussian
noise, Sobel filtering and rotation by {90, 180, 270} degrees. The paper names these ops and
shows them (its Figure 4) but gives no parameters, so ours are stated here and are options:

* ``cutout``    one square of side ``size`` x the image side (0.5: DeVries & Taylor's 16 px on
                CIFAR), centre uniform over the image, clipped at the border, filled with 0.
* ``noise``     x + N(0, sigma^2) per pixel with sigma ~ U(0.05, 0.15) per sample, clamped to [0, 1].
* ``sobel``     Sobel gradient magnitude of the gray image, scaled to [0, 1] per image, as 3 channels.
* ``rotate``    rotation by 90, 180 or 270 degrees, equally likely (square images).

Every op also takes ``p``, the probability that a sample gets it.

Doing this on whole batches instead of per image in DataLoader workers is what keeps the CPU
free for the encoder. Why our kernels and not kornia.augmentation (the well-kept library for
this): with the same ops at batch 512, 32x32, on the 2-core CPU, ours ran 3,453 views/s at one
thread vs kornia's 2,564 (1.35x) and 6,665 vs 3,688 at two (1.8x); the PIL per-image pipeline
ran 770 (bench/augment_speed.py, BENCHMARKS.md). Re-run the benchmark before switching.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from simclr.core.augment_config import AugmentOp
from simclr.core.errors import SimCLRError

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601-2 luma, as torchvision's rgb_to_grayscale


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, device=device)


def _bernoulli(n: int, p: float, g: torch.Generator, device) -> Tensor:
    return torch.rand(n, generator=g, device=device) < p


_whole_batch_everywhere = False


@contextlib.contextmanager
def whole_batch_form():
    """Within it, :func:`apply_where` takes its whole-batch form on the CPU too: the form that runs
    on a GPU, so it can be checked and timed here."""
    global _whole_batch_everywhere
    before, _whole_batch_everywhere = _whole_batch_everywhere, True
    try:
        yield
    finally:
        _whole_batch_everywhere = before


def apply_where(mask: Tensor, x: Tensor, op: Callable[..., Tensor], *per_sample: Tensor,
                in_place: bool = False) -> Tensor:
    """``op(x, *per_sample)`` on the samples where ``mask`` holds; the others unchanged.

    Picking those rows (``torch.nonzero``) needs their count on the host: on a GPU that makes
    the host wait for the device at every call. So off the CPU (and on it within
    :func:`whole_batch_form`) ``op`` runs on the whole batch and ``torch.where`` keeps its result
    where ``mask`` holds, which costs the op on the other samples and no wait; on the CPU it runs
    on the picked rows only.
    Each sample's result is the same either way (``op`` works per sample). ``in_place``: the
    picked rows may be written into ``x`` (a tensor the caller just made), sparing a copy.
    """
    if x.device.type != "cpu" or _whole_batch_everywhere:
        return torch.where(mask.view(-1, *(1,) * (x.dim() - 1)), op(x, *per_sample), x)
    idx = torch.nonzero(mask).squeeze(1)
    if idx.numel() == 0:
        return x
    out = x if in_place else x.clone()
    out[idx] = op(x[idx], *(t[idx] for t in per_sample))
    return out


# --------------------------------------------------------------------------------------------
# crop
# --------------------------------------------------------------------------------------------
def sample_crop_boxes(
    n: int, height: int, width: int, scale: Sequence[float], ratio: Sequence[float], g: torch.Generator,
    device=None, attempts: int = 10,
) -> Tensor:
    """Per-sample crop boxes ``(top, left, h, w)`` drawn as torchvision's RandomResizedCrop.

    Area fraction ~ U(scale), log aspect ~ U(log ratio); the first of 10 attempts that fits
    wins; samples with none fall back to the central crop clamped to the ratio range.
    """
    area = height * width
    target = area * _uniform(n * attempts, scale[0], scale[1], g, device).view(n, attempts)
    log_r = _uniform(n * attempts, math.log(ratio[0]), math.log(ratio[1]), g, device).view(n, attempts)
    aspect = torch.exp(log_r)
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    fits = (w > 0) & (h > 0) & (w <= width) & (h <= height)
    first = torch.argmax(fits.int(), dim=1)
    any_fit = fits.any(dim=1)
    w = w.gather(1, first[:, None]).squeeze(1)
    h = h.gather(1, first[:, None]).squeeze(1)
    # fallback: central crop (torchvision's rule)
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        fh, fw = height, round(height * max(ratio))
    else:
        fw, fh = width, height
    w = torch.where(any_fit, w, torch.full_like(w, fw))
    h = torch.where(any_fit, h, torch.full_like(h, fh))
    # torch.randint(0, H - h + 1) per sample == floor(U * (H - h + 1))
    top = torch.floor(torch.rand(n, generator=g, device=device) * (height - h + 1))
    left = torch.floor(torch.rand(n, generator=g, device=device) * (width - w + 1))
    top = torch.where(any_fit, top, torch.full_like(top, (height - fh) // 2))
    left = torch.where(any_fit, left, torch.full_like(left, (width - fw) // 2))
    return torch.stack([top, left, h, w], dim=1)


def resized_crop(x: Tensor, boxes: Tensor) -> Tensor:
    """Crop each image to its box and resize back to the input size (bilinear)."""
    b, _, height, width = x.shape
    top, left, h, w = boxes.to(x.dtype).unbind(1)
    theta = torch.zeros(b, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = w / width
    theta[:, 0, 2] = (2 * left + w) / width - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * top + h) / height - 1
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_resized_crop(x: Tensor, g: torch.Generator, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> Tensor:
    boxes = sample_crop_boxes(x.shape[0], x.shape[2], x.shape[3], scale, ratio, g, x.device)
    return resized_crop(x, boxes)


def horizontal_flip(x: Tensor, g: torch.Generator, p: float = 0.5) -> Tensor:
    flip = _bernoulli(x.shape[0], p, g, x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


# --------------------------------------------------------------------------------------------
# colour
# --------------------------------------------------------------------------------------------
def grayscale(x: Tensor) -> Tensor:
    r, g_, b = x.unbind(1)
    y = GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g_ + GRAY_WEIGHTS[2] * b
    return y.unsqueeze(1)


def _blend(a: Tensor, b: Tensor, factor: Tensor) -> Tensor:
    return (factor * a + (1 - factor) * b).clamp_(0, 1)


def adjust_hue(x: Tensor, f: Tensor) -> Tensor:
    """Rotate hue by f (fraction of a turn) in HSV space, as torchvision's tensor adjust_hue."""
    r, g_, b = x.unbind(1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    v = maxc
    cr = maxc - minc
    eqc = cr == 0
    s = cr / torch.where(eqc, torch.ones_like(maxc), maxc)
    cr_div = torch.where(eqc, torch.ones_like(cr), cr)
    rc, gc, bc = (maxc - r) / cr_div, (maxc - g_) / cr_div, (maxc - b) / cr_div
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g_) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g_) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    h = torch.remainder(h + f.view(-1, 1, 1), 1.0) * 6.0
    # hsv -> rgb in closed form: channel(n) = v - v*s*clamp(min(k, 4-k), 0, 1), k = (n + 6h) mod 6
    # (equal to torchvision's sector table, without building six candidate images per channel)
    vs = v * s
    out = [v - vs * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
           for k in (torch.remainder(n + h, 6.0) for n in (5.0, 3.0, 1.0))]
    return torch.stack(out, dim=1)


def sample_jitter_factors(n: int, strength: float, g: torch.Generator, device=None) -> dict[str, Tensor]:
    """ColorJitter(0.8s, 0.8s, 0.8s, 0.2s) factors per sample plus a random order of the four.

    brightness/contrast/saturation ~ U(max(0, 1 - 0.8s), 1 + 0.8s); hue ~ U(-min(0.2s, .5), +).
    """
    bcs = 0.8 * strength
    hue = min(0.2 * strength, 0.5)
    return {
        "brightness": _uniform(n, max(0.0, 1 - bcs), 1 + bcs, g, device),
        "contrast": _uniform(n, max(0.0, 1 - bcs), 1 + bcs, g, device),
        "saturation": _uniform(n, max(0.0, 1 - bcs), 1 + bcs, g, device),
        "hue": _uniform(n, -hue, hue, g, device),
        "order": torch.argsort(torch.rand(n, 4, generator=g, device=device), dim=1),
    }


def color_distortion(x: Tensor, g: torch.Generator, strength: float = 1.0, p: float = 0.8) -> Tensor:
    """Colour jitter of strength s applied with probability p, order random per sample.

    Brightness, contrast and saturation are all blends f*x + (1-f)*target (target 0, the mean
    gray, the gray image), so each of the 4 order positions is one fused blend over the whole
    batch with a per-sample factor and target (f = 1 where the sample's op there is hue or it
    is not jittered), plus hue on the samples whose op there is hue: faster than gathering the
    16 (position, op) subsets one by one (measured in BENCHMARKS.md, "colour distortion").
    """
    n = x.shape[0]
    apply = _bernoulli(n, p, g, x.device)
    f = sample_jitter_factors(n, strength, g, x.device)
    blend_factors = torch.stack([f["brightness"], f["contrast"], f["saturation"]], dim=1)
    for position in range(4):
        op = torch.where(apply, f["order"][:, position], torch.full_like(f["order"][:, position], -1))
        is_blend = (op >= 0) & (op <= 2)
        factor = torch.where(is_blend, blend_factors.gather(1, op.clamp(0, 2)[:, None]).squeeze(1),
                             torch.ones_like(f["hue"]))
        gray = grayscale(x)
        target = torch.where((op == 1).view(-1, 1, 1, 1), gray.mean(dim=(1, 2, 3), keepdim=True), gray)
        target = target * (op != 0).view(-1, 1, 1, 1).to(x.dtype)  # brightness blends with black
        x = apply_where(op == 3, _blend(x, target, factor.view(-1, 1, 1, 1)), adjust_hue, f["hue"], in_place=True)
    return x


def random_grayscale(x: Tensor, g: torch.Generator, p: float = 0.2) -> Tensor:
    gray = _bernoulli(x.shape[0], p, g, x.device)
    return torch.where(gray[:, None, None, None], grayscale(x).expand_as(x), x)


# --------------------------------------------------------------------------------------------
# blur
# --------------------------------------------------------------------------------------------
def blur_kernel_size(side: int, fraction: float = 0.1) -> int:
    """Odd kernel about `fraction` of the side (the paper: 10%; SimCLR code: 2*(side//20)+1)."""
    radius = max(1, int(side * fraction) // 2)
    return 2 * radius + 1


def gaussian_blur(x: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Separable Gaussian blur with a per-sample sigma, reflect padding."""
    b, c, h, w = x.shape
    radius = kernel_size // 2
    coords = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (coords[None, :] / sigma[:, None].to(x.dtype)) ** 2)
    k = k / k.sum(dim=1, keepdim=True)  # (B, K)
    k = k.repeat_interleave(c, dim=0)  # (B*C, K)
    y = x.reshape(1, b * c, h, w)
    y = F.pad(y, (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k.view(b * c, 1, 1, kernel_size), groups=b * c)
    y = F.conv2d(y, k.view(b * c, 1, kernel_size, 1), groups=b * c)
    return y.view(b, c, h, w)


def random_gaussian_blur(
    x: Tensor, g: torch.Generator, p: float = 0.5, sigma=(0.1, 2.0), kernel_fraction: float = 0.1
) -> Tensor:
    n = x.shape[0]
    apply = _bernoulli(n, p, g, x.device)
    sig = _uniform(n, sigma[0], sigma[1], g, x.device)
    kernel_size = blur_kernel_size(min(x.shape[-2:]), kernel_fraction)
    return apply_where(apply, x, lambda xs, sigmas: gaussian_blur(xs, sigmas, kernel_size), sig)


# --------------------------------------------------------------------------------------------
# the other ops of the paper's Figure 5
# --------------------------------------------------------------------------------------------
def cutout(x: Tensor, g: torch.Generator, p: float = 1.0, size: float = 0.5) -> Tensor:
    """Zero one square of side round(size * side) per sample, centre uniform, clipped at the edges."""
    b, _, h, w = x.shape
    side = max(1, round(size * min(h, w)))
    apply = _bernoulli(b, p, g, x.device)
    cy = torch.floor(torch.rand(b, generator=g, device=x.device) * h)
    cx = torch.floor(torch.rand(b, generator=g, device=x.device) * w)
    top, left = cy - side // 2, cx - side // 2
    rows = torch.arange(h, device=x.device, dtype=cy.dtype)[None, :]
    cols = torch.arange(w, device=x.device, dtype=cx.dtype)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + side)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + side)
    hole = (in_rows[:, :, None] & in_cols[:, None, :]) & apply[:, None, None]
    return x.masked_fill(hole[:, None], 0.0)


def gaussian_noise(x: Tensor, g: torch.Generator, p: float = 1.0, sigma=(0.05, 0.15)) -> Tensor:
    """Add N(0, s^2) noise per pixel, s ~ U(sigma) per sample; clamp to [0, 1]."""
    b = x.shape[0]
    apply = _bernoulli(b, p, g, x.device)
    s = _uniform(b, sigma[0], sigma[1], g, x.device) * apply
    noise = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
    return (x + s.view(-1, 1, 1, 1).to(x.dtype) * noise).clamp_(0, 1)


SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


def sobel_magnitude(x: Tensor) -> Tensor:
    """|grad| of the gray image by the 3x3 Sobel pair (replicate padding), scaled to [0, 1] per image."""
    gray = F.pad(grayscale(x), (1, 1, 1, 1), mode="replicate")
    d = torch.arange(-1.0, 2.0, dtype=x.dtype, device=x.device)  # built on the device: a copy from the host would wait
    kx = (2 - d.abs())[:, None] * d  # [1, 2, 1]^T [-1, 0, 1]: SOBEL_X
    kernels = torch.stack([kx, kx.T])[:, None]  # (2, 1, 3, 3): d/dx and d/dy
    gx, gy = F.conv2d(gray, kernels).unbind(1)
    mag = torch.sqrt(gx * gx + gy * gy)
    mag = mag / mag.amax(dim=(1, 2), keepdim=True).clamp_min(1e-6)
    return mag.unsqueeze(1).expand_as(x)


def random_sobel(x: Tensor, g: torch.Generator, p: float = 1.0) -> Tensor:
    apply = _bernoulli(x.shape[0], p, g, x.device)
    return torch.where(apply[:, None, None, None], sobel_magnitude(x), x)


def random_rotate90(x: Tensor, g: torch.Generator, p: float = 1.0) -> Tensor:
    """Rotate each sample by k * 90 degrees, k uniform in {1, 2, 3}, with probability p."""
    b, _, h, w = x.shape
    if h != w:
        raise SimCLRError(f"augment.rotate needs square images; these are {h}x{w} (set data.image_size)")
    apply = _bernoulli(b, p, g, x.device)
    k = torch.randint(1, 4, (b,), generator=g, device=x.device) * apply
    for turns in (1, 2, 3):  # disjoint masks: a sample is turned once, from its input
        x = apply_where(k == turns, x, lambda xs, t=turns: torch.rot90(xs, t, dims=(2, 3)))
    return x


# --------------------------------------------------------------------------------------------
# the policy
# --------------------------------------------------------------------------------------------
OPS: dict[str, Callable[..., Tensor]] = {
    "crop": random_resized_crop,
    "flip": horizontal_flip,
    "color": color_distortion,
    "grayscale": random_grayscale,
    "blur": random_gaussian_blur,
    "cutout": cutout,
    "noise": gaussian_noise,
    "sobel": random_sobel,
    "rotate": random_rotate90,
}


def to_float(images: Tensor) -> Tensor:
    """uint8 NHWC or NCHW -> float NCHW in [0, 1]."""
    if images.ndim == 4 and images.shape[-1] == 3 and images.shape[1] != 3:
        images = images.permute(0, 3, 1, 2)
    return images.float().div_(255.0)


class AugmentPolicy:
    """The ``augment`` param as a callable: ``policy(uint8 batch, generator) -> float views``."""

    def __init__(self, ops: Sequence[AugmentOp]):
        self.ops = tuple(ops)

    def __call__(self, images: Tensor, g: torch.Generator) -> Tensor:
        x = to_float(images)
        for op in self.ops:
            x = OPS[op.name](x, g, **op.options)
        return x.contiguous()

    def __repr__(self) -> str:
        return "AugmentPolicy(" + ", ".join(f"{o.name}{o.options}" for o in self.ops) + ")"
