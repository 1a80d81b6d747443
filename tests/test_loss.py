"""NT-Xent against a direct per-pair transcription of the paper's formula (Chen et al. 2020, eq. 1)."""

import math

import pytest
import torch

from simclr.core.loss import nt_xent_loss


def paper_nt_xent(z1, z2, tau):
    """L = 1/2N sum_k [l(2k-1, 2k) + l(2k, 2k-1)], l(i,j) = -log exp(s_ij/t) / sum_{k!=i} exp(s_ik/t)."""
    views = []
    for a, b in zip(z1, z2):  # interleave: views 2k-1 and 2k are a positive pair
        views += [a, b]
    n2 = len(views)

    def sim(u, v):
        return float(torch.dot(u, v) / (u.norm() * v.norm()))

    def l(i, j):
        num = math.exp(sim(views[i], views[j]) / tau)
        den = sum(math.exp(sim(views[i], views[k]) / tau) for k in range(n2) if k != i)
        return -math.log(num / den)

    return sum(l(2 * k, 2 * k + 1) + l(2 * k + 1, 2 * k) for k in range(n2 // 2)) / n2


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_matches_the_papers_formula(tau):
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randn(6, 5, generator=g, dtype=torch.float64)
    assert nt_xent_loss(z1, z2, tau).item() == pytest.approx(paper_nt_xent(z1, z2, tau), rel=1e-6)


def test_is_computed_in_fp32_even_for_bf16_inputs():
    z1, z2 = torch.randn(8, 16).bfloat16(), torch.randn(8, 16).bfloat16()
    loss = nt_xent_loss(z1, z2, 0.5)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(nt_xent_loss(z1.float(), z2.float(), 0.5).item(), rel=1e-6)


def test_identical_views_give_a_lower_loss_than_random_pairs():
    z = torch.randn(32, 16)
    assert nt_xent_loss(z, z.clone(), 0.5) < nt_xent_loss(z, torch.randn(32, 16), 0.5)


def test_scale_invariant_because_cosine():
    z1, z2 = torch.randn(8, 4), torch.randn(8, 4)
    assert nt_xent_loss(3 * z1, 0.2 * z2, 0.5).item() == pytest.approx(nt_xent_loss(z1, z2, 0.5).item(), rel=1e-5)


def test_sharded_anchors_against_global_candidates_average_to_the_full_loss():
    """The distributed form: each 'rank' scores its own pairs against all gathered views."""
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(12, 8, generator=g), torch.randn(12, 8, generator=g)
    full = nt_xent_loss(z1, z2, 0.2)
    shards = [nt_xent_loss(z1[r * 4:(r + 1) * 4], z2[r * 4:(r + 1) * 4], 0.2, z1, z2, offset=r * 4) for r in range(3)]
    assert torch.stack(shards).mean().item() == pytest.approx(full.item(), rel=1e-6)


def test_gradient_matches_the_papers_formula():
    z1 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    nt_xent_loss(z1, z2, 0.5).backward()
    # finite differences of the per-pair formula
    eps = 1e-6
    for t, grad in ((z1, z1.grad), (z2, z2.grad)):
        for idx in [(0, 0), (2, 1), (3, 2)]:
            with torch.no_grad():
                t[idx] += eps
                up = paper_nt_xent(z1.detach(), z2.detach(), 0.5)
                t[idx] -= 2 * eps
                down = paper_nt_xent(z1.detach(), z2.detach(), 0.5)
                t[idx] += eps
            assert grad[idx].item() == pytest.approx((up - down) / (2 * eps), abs=1e-6)
