"""Augmentation parameter ranges and probabilities, and the colour ops against torchvision's own."""

import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from simclr.core import augment as A
from simclr.core.augment_config import parse_augment

N = 20000


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_crop_boxes_follow_scale_and_ratio():
    boxes = A.sample_crop_boxes(N, 32, 32, (0.08, 1.0), (3 / 4, 4 / 3), gen())
    top, left, h, w = boxes.unbind(1)
    assert (h >= 1).all() and (w >= 1).all() and (top >= 0).all() and (left >= 0).all()
    assert (top + h <= 32).all() and (left + w <= 32).all()
    area = h * w / 1024
    # rounding to whole pixels widens the bounds a little at 32x32
    assert area.min() >= 0.08 * 0.5 and area.max() <= 1.0
    aspect = w / h
    assert aspect.min() >= 0.5 and aspect.max() <= 2.0
    # most of the mass is inside the nominal ranges
    assert ((aspect >= 3 / 4 - 0.1) & (aspect <= 4 / 3 + 0.1)).float().mean() > 0.9
    # area ~ U(0.08, 1) before rounding: mean ~ 0.54 (minus the attempts that did not fit)
    assert 0.45 < area.mean().item() < 0.6


def test_crop_boxes_differ_per_sample():
    boxes = A.sample_crop_boxes(64, 32, 32, (0.08, 1.0), (3 / 4, 4 / 3), gen())
    assert len({tuple(b.tolist()) for b in boxes}) > 50


def test_resized_crop_of_the_full_box_is_identity():
    x = torch.rand(3, 3, 8, 8)
    boxes = torch.tensor([[0, 0, 8, 8]] * 3, dtype=torch.float32)
    assert torch.allclose(A.resized_crop(x, boxes), x, atol=1e-5)


def test_resized_crop_matches_torchvision_on_an_integer_box():
    x = torch.rand(1, 3, 16, 16)
    box = torch.tensor([[2, 3, 8, 8]], dtype=torch.float32)  # exact 2x upscale
    ours = A.resized_crop(x, box)
    ref = TF.resized_crop(x, 2, 3, 8, 8, [16, 16], antialias=False)
    assert torch.allclose(ours[:, :, 1:-1, 1:-1], ref[:, :, 1:-1, 1:-1], atol=1e-5)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_flip_and_grayscale_probabilities(p):
    x = torch.rand(N, 3, 2, 2)
    flipped = A.horizontal_flip(x, gen(), p=p)
    frac = (flipped != x).flatten(1).any(1).float().mean().item()
    assert frac == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / N))
    gray = A.random_grayscale(x, gen(1), p=p)
    is_gray = (gray[:, 0] == gray[:, 1]).flatten(1).all(1) & (gray[:, 1] == gray[:, 2]).flatten(1).all(1)
    assert is_gray.float().mean().item() == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / N))


@pytest.mark.parametrize("s", [0.5, 1.0])
def test_jitter_factor_ranges(s):
    f = A.sample_jitter_factors(N, s, gen())
    for name in ("brightness", "contrast", "saturation"):
        assert f[name].min() >= max(0, 1 - 0.8 * s) and f[name].max() <= 1 + 0.8 * s
        assert f[name].mean().item() == pytest.approx(1.0, abs=0.02)
    assert f["hue"].min() >= -0.2 * s and f["hue"].max() <= 0.2 * s
    assert sorted(f["order"][0].tolist()) == [0, 1, 2, 3]
    assert len({tuple(o.tolist()) for o in f["order"][:500]}) == 24  # every order occurs


def test_hue_equals_torchvision():
    x = torch.rand(4, 3, 8, 8)
    hue = torch.tensor([-0.2, -0.05, 0.1, 0.2])
    for i in range(4):
        xi = x[i : i + 1]
        assert torch.allclose(A.adjust_hue(xi, hue[i : i + 1]), TF.adjust_hue(xi, hue[i].item()), atol=1e-5)


@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_colour_distortion_equals_torchvision_ops_in_each_samples_order(strength):
    """The fused batch op == torchvision's four adjustments applied per image, in the image's
    drawn order with its drawn factors (the draws replayed from the same generator seed)."""
    n, p = 64, 0.8
    x = torch.rand(n, 3, 8, 8)
    g = gen(7)
    apply = torch.rand(n, generator=g) < p  # color_distortion draws these first, then the factors
    f = A.sample_jitter_factors(n, strength, g)
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    names = ("brightness", "contrast", "saturation", "hue")
    expected = []
    for i in range(n):
        xi = x[i : i + 1]
        if apply[i]:
            for k in f["order"][i].tolist():
                xi = ops[k](xi, f[names[k]][i].item())
        expected.append(xi)
    ours = A.color_distortion(x, gen(7), strength=strength, p=p)
    assert torch.allclose(ours, torch.cat(expected), atol=1e-5)


def test_colour_distortion_probability_and_strength_zero():
    x = torch.rand(N, 3, 4, 4)
    changed = (A.color_distortion(x, gen(), strength=1.0, p=0.8) - x).abs().flatten(1).amax(1) > 1e-6
    assert changed.float().mean().item() == pytest.approx(0.8, abs=0.02)
    assert torch.allclose(A.color_distortion(x[:64], gen(), strength=0.0, p=1.0), x[:64], atol=1e-6)


def test_blur_kernel_is_ten_percent_of_the_side_and_odd():
    assert A.blur_kernel_size(32) == 3
    assert A.blur_kernel_size(224) == 23  # SimCLR's code: 2 * (224 // 20) + 1
    assert A.blur_kernel_size(96) == 9


def test_blur_equals_torchvision_gaussian_blur():
    x = torch.rand(2, 3, 16, 16)
    sigma = torch.tensor([0.5, 1.7])
    ours = A.gaussian_blur(x, sigma, 5)
    for i in range(2):
        ref = TF.gaussian_blur(x[i : i + 1], [5, 5], [sigma[i].item()] * 2)
        assert torch.allclose(ours[i : i + 1], ref, atol=1e-5)


def test_blur_probability():
    x = torch.rand(4000, 3, 8, 8)
    blurred = (A.random_gaussian_blur(x, gen(), p=0.5) != x).flatten(1).any(1).float().mean().item()
    assert blurred == pytest.approx(0.5, abs=0.04)


def test_policy_output_is_float_in_unit_range_and_two_views_differ():
    images = torch.randint(0, 256, (16, 32, 32, 3), dtype=torch.uint8)
    policy = A.AugmentPolicy(parse_augment("simclr"))
    g = gen()
    v1, v2 = policy(images, g), policy(images, g)
    assert v1.shape == (16, 3, 32, 32) and v1.dtype == torch.float32
    assert v1.min() >= 0 and v1.max() <= 1
    assert not torch.allclose(v1, v2)


def test_empty_policy_is_just_conversion():
    images = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8)
    out = A.AugmentPolicy(parse_augment("none"))(images, gen())
    assert torch.equal(out, images.permute(0, 3, 1, 2).float() / 255)


# ---- the other ops of the paper's Figure 5 -------------------------------------------------
def test_cutout_zeroes_one_square_clipped_at_the_border():
    x = torch.ones(2000, 3, 16, 16)
    out = A.cutout(x, gen(), p=1.0, size=0.5)
    holes = out[:, 0] == 0
    assert (out[:, 0] == out[:, 1]).all()  # the same hole in every channel
    rows, cols = holes.any(2), holes.any(1)
    # the hole is the rectangle of its row span x column span, at most 8 x 8, and never empty
    assert (holes.sum((1, 2)) == rows.sum(1) * cols.sum(1)).all()
    assert rows.sum(1).max() == 8 and cols.sum(1).max() == 8 and rows.sum(1).min() >= 4
    centred = (rows.sum(1) == 8) & (cols.sum(1) == 8)
    assert 0.2 < centred.float().mean() < 0.4  # (9/16)^2 of the centres keep the whole square
    assert len({tuple(h.nonzero()[0].tolist()) for h in holes[:200]}) > 50  # positions per sample


def test_cutout_probability():
    out = A.cutout(torch.ones(N, 3, 4, 4), gen(), p=0.3, size=0.5)
    frac = (out == 0).flatten(1).any(1).float().mean().item()
    assert frac == pytest.approx(0.3, abs=4 * math.sqrt(0.21 / N))


def test_noise_std_is_drawn_per_sample_from_its_range():
    x = torch.full((400, 3, 32, 32), 0.5)
    out = A.gaussian_noise(x, gen(), p=1.0, sigma=(0.05, 0.15))
    std = (out - x).flatten(1).std(1)
    assert std.min() > 0.045 and std.max() < 0.16
    assert std.std() > 0.02  # not one sigma for the whole batch
    assert A.gaussian_noise(x, gen(), p=0.0).equal(x)


def test_sobel_equals_the_textbook_filter():
    x = torch.rand(3, 3, 9, 11)
    ours = A.sobel_magnitude(x)
    gray = A.grayscale(x)[:, 0].numpy()
    import numpy as np

    kx = np.array(A.SOBEL_X)
    for i in range(3):
        padded = np.pad(gray[i], 1, mode="edge")
        gx = np.zeros_like(gray[i])
        gy = np.zeros_like(gray[i])
        for r in range(gray.shape[1]):
            for c in range(gray.shape[2]):
                patch = padded[r : r + 3, c : c + 3]
                gx[r, c] = (patch * kx).sum()
                gy[r, c] = (patch * kx.T).sum()
        mag = np.sqrt(gx**2 + gy**2)
        ref = torch.from_numpy(mag / mag.max()).float()
        for ch in range(3):
            assert torch.allclose(ours[i, ch], ref, atol=1e-5)


def test_rotate_turns_each_sample_by_90_180_or_270_equally_often():
    x = torch.rand(3000, 3, 5, 5)
    out = A.random_rotate90(x, gen(), p=1.0)
    turns = torch.full((3000,), -1)
    for k in (0, 1, 2, 3):
        same = (out == torch.rot90(x, k, dims=(2, 3))).flatten(1).all(1)
        turns[same] = k
    assert (turns >= 1).all()  # never left as it was
    counts = torch.bincount(turns, minlength=4)[1:].float() / 3000
    assert torch.allclose(counts, torch.full((3,), 1 / 3), atol=0.04)


def test_rotate_of_non_square_images_is_one_clear_error():
    from simclr.core.errors import SimCLRError

    with pytest.raises(SimCLRError, match="augment.rotate needs square images; these are 4x6"):
        A.random_rotate90(torch.rand(2, 3, 4, 6), gen())


@pytest.mark.parametrize("op", ["cutout", "noise", "sobel", "rotate"])
def test_figure5_ops_are_policy_ops_and_keep_the_unit_range(op):
    policy = A.AugmentPolicy(parse_augment({"crop": {}, op: {}}))
    images = torch.randint(0, 256, (16, 32, 32, 3), dtype=torch.uint8)
    v1, v2 = policy(images, gen()), policy(images, gen(1))
    assert v1.shape == (16, 3, 32, 32) and v1.min() >= 0 and v1.max() <= 1
    assert not torch.equal(v1, v2)


def test_the_gpu_form_of_the_policy_gives_the_cpu_forms_views(monkeypatch):
    """Off the CPU the ops that touch only some samples (hue, blur, rotate) run on the whole batch
    and keep the picked samples with torch.where, so the host never waits for a count; here that
    form is forced on the CPU, with the same draws: each view is the one the row-picking form gives."""
    policy = A.AugmentPolicy(parse_augment({"crop": {}, "flip": {}, "color": {}, "grayscale": {}, "blur": {},
                                            "rotate": {"p": 0.75}}))
    images = torch.randint(0, 256, (64, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    picked = policy(images, torch.Generator().manual_seed(1))
    nonzero = torch.nonzero
    monkeypatch.setattr(torch, "nonzero", lambda *a, **k: pytest.fail("the GPU form picked rows"))
    with A.whole_batch_form():
        whole = policy(images, torch.Generator().manual_seed(1))
    monkeypatch.setattr(torch, "nonzero", nonzero)
    assert torch.equal(whole, picked)
