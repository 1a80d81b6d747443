"""One LARS step against a hand computation of SimCLR's update, with the exclusions checked."""

import pytest
import torch
from torch import nn

from simclr.core.lars import LARS, param_groups


def test_one_step_matches_hand_computation():
    w = nn.Parameter(torch.tensor([3.0, 4.0]).view(1, 2))  # 2-d: a weight, adapted and decayed
    b = nn.Parameter(torch.tensor([1.0]))  # 1-d: a bias, excluded
    w.grad = torch.tensor([[0.6, 0.8]])
    b.grad = torch.tensor([0.5])
    lr, wd, eta, m = 0.1, 0.01, 0.001, 0.9
    opt = LARS([{"params": [w], "weight_decay": wd, "lars": True},
                {"params": [b], "weight_decay": 0.0, "lars": False}], lr=lr, momentum=m, weight_decay=wd,
               trust_coefficient=eta)
    opt.step()
    # weight: g' = g + wd*w = [0.63, 0.84]; ||w|| = 5; ||g'|| = 1.05; trust = 0.001*5/1.05
    g = torch.tensor([0.63, 0.84])
    trust = eta * 5.0 / 1.05
    expected_w = torch.tensor([3.0, 4.0]) - lr * trust * g
    assert w.detach().view(-1).tolist() == pytest.approx(expected_w.tolist(), abs=1e-7)
    # bias: no decay, no trust ratio: plain SGD step
    assert b.item() == pytest.approx(1.0 - lr * 0.5, abs=1e-7)

    # second step: momentum carries lr*trust*g' of the first
    w.grad = torch.tensor([[0.6, 0.8]])
    b.grad = torch.tensor([0.5])
    w_before = w.detach().view(-1).clone()
    opt.step()
    g2 = torch.tensor([0.6, 0.8]) + wd * w_before
    trust2 = eta * w_before.norm() / g2.norm()
    v = m * lr * trust * g + lr * trust2 * g2
    assert w.detach().view(-1).tolist() == pytest.approx((w_before - v).tolist(), abs=1e-7)
    assert b.item() == pytest.approx(1.0 - lr * 0.5 - (m * lr * 0.5 + lr * 0.5), abs=1e-7)


def test_zero_weight_norm_uses_trust_one():
    w = nn.Parameter(torch.zeros(2, 2))
    w.grad = torch.ones(2, 2)
    LARS([w], lr=0.1, weight_decay=0.0).step()
    assert torch.allclose(w, torch.full((2, 2), -0.1))


def test_groups_exclude_biases_and_batchnorm():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2), nn.BatchNorm1d(2))
    adapted, excluded = param_groups(model, weight_decay=1e-6)
    assert adapted["lars"] and adapted["weight_decay"] == 1e-6
    assert not excluded["lars"] and excluded["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in adapted["params"]) == ["0.weight", "2.weight"]
    assert sorted(names[id(p)] for p in excluded["params"]) == ["0.bias", "1.bias", "1.weight", "2.bias", "3.bias", "3.weight"]


def test_state_dict_round_trips_with_weights_only(tmp_path):
    model = nn.Linear(3, 2)
    opt = LARS(param_groups(model, 1e-6), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    torch.save(opt.state_dict(), tmp_path / "opt.pt")
    state = torch.load(tmp_path / "opt.pt", weights_only=True)
    opt2 = LARS(param_groups(model, 1e-6), lr=0.1)
    opt2.load_state_dict(state)
    assert torch.equal(opt2.state_dict()["state"][0]["momentum_buffer"], opt.state_dict()["state"][0]["momentum_buffer"])


def test_step_if_keeps_a_good_step_bit_for_bit_and_undoes_a_bad_one():
    """simclr.core.finite_step.step_if: ok -> exactly optimizer.step(); not ok -> parameters and momentum
    as before the step, a first-step momentum buffer zeroed (LARS's own start)."""
    from simclr.core.finite_step import FiniteGuard, step_if

    def setup():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
        return model, LARS(param_groups(model, 1e-6), lr=0.5)

    def grads(model, scale=1.0):
        model(torch.randn(8, 4, generator=torch.Generator().manual_seed(1))).pow(2).sum().mul(scale).backward()

    plain, plain_opt = setup()
    guarded, guarded_opt = setup()
    for _ in range(2):
        for model, opt in ((plain, plain_opt), (guarded, guarded_opt)):
            opt.zero_grad()
            grads(model)
        plain_opt.step()
        step_if(guarded_opt, torch.tensor(True))
    for a, b in zip(plain.parameters(), guarded.parameters()):
        assert torch.equal(a, b)
    before = [p.clone() for p in guarded.parameters()]  # BatchNorm's running statistics are the forward's, not the step's
    momentum = [guarded_opt.state[p]["momentum_buffer"].clone() for p in guarded.parameters()]
    guarded_opt.zero_grad()
    grads(guarded, float("nan"))
    guard = FiniteGuard(torch.device("cpu"))
    ok = guard.check(3, torch.tensor(1.0), torch.nn.utils.get_total_norm([p.grad for p in guarded.parameters()]))
    step_if(guarded_opt, ok)
    assert not ok and guard.read()[0] == 3
    assert all(torch.equal(p, b) for p, b in zip(guarded.parameters(), before))
    assert all(torch.equal(guarded_opt.state[p]["momentum_buffer"], m) for p, m in zip(guarded.parameters(), momentum))
    assert not guard.check(4, torch.tensor(1.0), torch.tensor(1.0))  # sticky: no later step either
    assert guard.read()[0] == 3  # the first bad step stays the one named

    fresh, fresh_opt = setup()
    fresh_opt.zero_grad()
    grads(fresh, float("nan"))
    step_if(fresh_opt, torch.tensor(False))
    assert all(torch.count_nonzero(fresh_opt.state[p]["momentum_buffer"]) == 0 for p in fresh.parameters())
