"""EMA against its closed form; the per-step schedules."""

from __future__ import annotations

import torch
from torch import nn

from cips3d.training.ema import ema_update
from cips3d.training.schedule import ema_active, fade_alpha, nerf_noise_std


def test_ema_after_k_steps_equals_the_closed_form():
    torch.manual_seed(0)
    model, ema = nn.Linear(3, 2).double(), nn.Linear(3, 2).double()
    e0 = ema.weight.detach().clone()
    decay, history = 0.9, []
    for _ in range(5):
        with torch.no_grad():
            model.weight.add_(torch.randn_like(model.weight))
        history.append(model.weight.detach().clone())
        ema_update(ema, model, decay)
    k = len(history)
    expected = decay**k * e0 + sum((1 - decay) * decay ** (k - 1 - i) * p for i, p in enumerate(history))
    assert torch.allclose(ema.weight, expected, atol=1e-12)


def test_frozen_parameters_are_copied_bit_for_bit():
    model, ema = nn.Linear(4, 4), nn.Linear(4, 4)
    model.weight.requires_grad_(False)
    with torch.no_grad():
        model.weight.copy_(torch.rand(4, 4) * 1e3 + 0.1)
        ema.weight.copy_(model.weight)
    for _ in range(10):
        ema_update(ema, model, 0.999)
    assert torch.equal(ema.weight, model.weight)
    assert not torch.equal(ema.bias, model.bias) or torch.equal(model.bias, ema.bias)


def test_schedules():
    assert (
        nerf_noise_std(0, 5000) == 1.0
        and nerf_noise_std(2500, 5000) == 0.5
        and nerf_noise_std(9000, 5000) == 0
    )
    assert nerf_noise_std(10, 0) == 0.0
    assert fade_alpha(0, 10_000) == 0 and fade_alpha(2500, 10_000) == 0.25 and fade_alpha(20_000, 10_000) == 1
    assert fade_alpha(0, 0) == 1.0
    assert not ema_active(999, 1000) and ema_active(1000, 1000)
