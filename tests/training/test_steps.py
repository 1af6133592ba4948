"""One D / G step: R1 against an independent computation, non-finite gradients caught."""

from __future__ import annotations

import torch
from torch import nn

from cips3d.training.losses import r1_penalty
from cips3d.training.steps import clip_or_skip


def test_r1_penalty_gives_each_copy_of_a_real_its_own_gradient():
    torch.manual_seed(0)
    net_a, net_b = nn.Linear(6, 1).double(), nn.Linear(6, 1).double()
    x = torch.randn(3, 6, dtype=torch.float64)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    logits = torch.cat([torch.tanh(net_a(a)) ** 2, torch.tanh(net_b(b)) ** 2])
    penalty = r1_penalty(logits, [a, b], gamma=10.0)
    expected = []
    for net in (net_a, net_b):
        for row in x:
            leaf = row.clone().requires_grad_()
            (g,) = torch.autograd.grad(torch.tanh(net(leaf)).square().sum(), leaf)
            expected.append(5.0 * g.square().sum())
    assert torch.allclose(penalty.squeeze(1), torch.stack(expected), atol=1e-12)
    penalty.mean().backward()  # double backward reaches the networks
    assert net_a.weight.grad is not None and net_a.weight.grad.abs().sum() > 0


def test_a_nan_gradient_is_caught_before_the_optimiser_step():
    torch.manual_seed(0)
    net = nn.Linear(4, 2)
    before = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    loss = net(torch.randn(3, 4)).sum()
    loss.backward()
    net.weight.grad[0, 0] = float("nan")
    ok, norm = clip_or_skip(net.parameters(), 10.0, loss)
    opt.step()
    assert not ok and norm != norm  # the norm is NaN
    assert all(torch.equal(p, b) for p, b in zip(net.parameters(), before, strict=True))
    # The official clip (error_if_nonfinite off) would have turned every gradient into NaN instead:
    loss = net(torch.randn(3, 4)).sum()
    loss.backward()
    net.weight.grad[0, 0] = float("nan")
    torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
    assert torch.isnan(net.bias.grad).all()


def test_a_finite_step_clips_and_proceeds():
    net = nn.Linear(4, 2)
    loss = (net(torch.ones(1, 4)) * 1e6).sum()
    loss.backward()
    ok, norm = clip_or_skip(net.parameters(), 10.0, loss)
    total = torch.sqrt(sum(p.grad.square().sum() for p in net.parameters()))
    assert ok and norm > 10 and abs(float(total) - 10.0) < 1e-3
