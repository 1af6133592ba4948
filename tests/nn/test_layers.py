"""The two modulated layers against their formulas, in float64."""

from __future__ import annotations

import torch

from cips3d.nn import FiLMSine, ModulatedLinear, modulate_weight


def test_modulate_weight_is_plus_one_style_then_demodulation_over_inputs():
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(5, 7, generator=g, dtype=torch.float64)
    style = torch.randn(3, 5, generator=g, dtype=torch.float64)
    w = modulate_weight(weight, style)
    for b in range(3):
        expected = weight * (style[b] + 1)[:, None]
        expected = expected / torch.sqrt((expected**2).sum(0, keepdim=True) + 1e-8)
        assert torch.allclose(w[b], expected, atol=1e-12)
    assert torch.allclose(w.norm(dim=1), torch.ones(3, 7, dtype=torch.float64), atol=1e-6)


def test_modulated_linear_applies_x_times_w_per_sample():
    layer = ModulatedLinear(4, 6, 8).double()
    layer.reset_parameters(torch.Generator().manual_seed(1))
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    style = torch.randn(2, 8, dtype=torch.float64)
    y = layer(x, style)
    for b in range(2):
        w = modulate_weight(layer.weight, layer.modulation(style[b : b + 1]))[0]
        assert torch.allclose(y[b], x[b] @ w, atol=1e-12)
    assert not layer.norm.weight.requires_grad  # official unused LayerNorm, kept frozen


def test_film_sine_uses_the_pi_gan_frequency_mapping():
    layer = FiLMSine(3, 4, 6).double()
    layer.reset_parameters(torch.Generator().manual_seed(2))
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    style = torch.randn(2, 6, dtype=torch.float64)
    gamma = 15 * layer.frequency(style) + 30
    beta = layer.phase(style)
    expected = torch.sin(gamma[:, None] * layer.linear(x) + beta[:, None])
    assert torch.allclose(layer(x, style), expected, atol=1e-12)


def test_film_init_ranges():
    layer = FiLMSine(128, 128, 128)
    layer.reset_parameters(torch.Generator().manual_seed(3))
    bound = (6 / 128) ** 0.5 / 25
    assert layer.linear.weight.abs().max() <= bound and layer.linear.weight.abs().max() > 0.9 * bound
    style_bound = 0.25 / 128**0.5  # default init times 0.25
    assert layer.frequency.weight.abs().max() <= style_bound
    assert layer.phase.weight.abs().max() > 0.9 * style_bound
