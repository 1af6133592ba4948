"""The two modulated layers against their formulas, in float64."""

from __future__ import annotations

import pytest
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


def _plain_modulated(weight, style, offset):
    """The formula of `modulate_weight` through autograd's own operations, for its gradient."""
    w = weight.unsqueeze(0) * (style + offset).unsqueeze(-1)
    return w / torch.sqrt(w.square().sum(dim=1, keepdim=True) + 1e-8)


@pytest.mark.parametrize("offset", [1.0, 0.0])  # CIPS-3D's INR; 2D CIPS
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # gradcheck's forward-AD check
def test_modulate_weight_gradient_is_that_of_its_formula(offset):
    g = torch.Generator().manual_seed(3)
    weight = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    style = torch.randn(3, 6, generator=g, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(3, 6, 5, generator=g, dtype=torch.float64)
    ours = torch.autograd.grad(modulate_weight(weight, style, style_offset=offset), (weight, style), upstream)
    plain = torch.autograd.grad(_plain_modulated(weight, style, offset), (weight, style), upstream)
    for a, b in zip(ours, plain, strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda w, s: modulate_weight(w, s, style_offset=offset), (weight, style), check_forward_ad=True
    )


def test_modulate_weight_goes_through_torch_func_and_odd_batches():
    """torch.func's grad and vmap (as the discriminator's blur allows), a batch of none, mixed dtypes."""
    g = torch.Generator().manual_seed(5)
    weight = torch.randn(6, 5, generator=g, dtype=torch.float64)
    style = torch.randn(3, 6, generator=g, dtype=torch.float64)
    mask = torch.randn(1, 6, 5, generator=g, dtype=torch.float64)

    def loss(w, s):
        return (modulate_weight(w, s) * mask).sum()

    w = weight.clone().requires_grad_()
    (plain,) = torch.autograd.grad((_plain_modulated(w, style, 1.0) * mask).sum(), w)
    assert torch.allclose(torch.func.grad(loss)(weight, style), plain, rtol=1e-10, atol=1e-12)
    per_style = torch.func.vmap(lambda s: torch.func.grad(loss)(weight, s))(style.unsqueeze(1))
    assert per_style.shape == (3, 6, 5)

    def curved(s):  # second derivatives: torch.func takes autograd's own formula (a review found wrong ones)
        return torch.sin(modulate_weight(weight, s) * mask).sum()

    def plain_curved(s):
        return torch.sin(_plain_modulated(weight, s, 1.0) * mask).sum()

    assert torch.allclose(torch.func.hessian(curved)(style), torch.func.hessian(plain_curved)(style))
    empty = torch.zeros(0, 6, dtype=torch.float64, requires_grad=True)
    modulate_weight(w, empty).sum().backward()  # no style: the weight's gradient is zero
    assert torch.equal(w.grad, torch.zeros_like(w))
    single = weight.float().requires_grad_()
    modulate_weight(single, style).sum().backward()  # a float64 style with a float32 weight
    assert single.grad.dtype == torch.float32


def test_modulate_weight_without_gradients_is_its_formula_for_mixed_dtypes_and_under_autocast():
    """Inference demodulates through a small product on the CPU: never rounded by a caller's autocast."""
    g = torch.Generator().manual_seed(6)
    weight = torch.randn(64, 48, generator=g)
    style = torch.randn(3, 64, generator=g, dtype=torch.float64)
    with torch.no_grad():
        mixed = modulate_weight(weight, style)
        assert mixed.dtype == torch.float64
        assert torch.allclose(mixed, _plain_modulated(weight.double(), style, 1.0), rtol=1e-12, atol=1e-14)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            rounded = modulate_weight(weight, style.float())
    assert rounded.dtype == torch.float32
    assert torch.allclose(rounded, _plain_modulated(weight, style.float(), 1.0), rtol=1e-5, atol=1e-6)


def test_modulate_weight_gives_the_style_gradient_of_a_frozen_weight():
    """Inversion fits styles to a frozen generator: only the style's gradient is asked for."""
    g = torch.Generator().manual_seed(4)
    weight = torch.randn(6, 5, generator=g, dtype=torch.float64)
    style = torch.randn(2, 6, generator=g, dtype=torch.float64, requires_grad=True)
    (ours,) = torch.autograd.grad(modulate_weight(weight, style).sum(), style)
    (plain,) = torch.autograd.grad(_plain_modulated(weight, style, 1.0).sum(), style)
    assert torch.allclose(ours, plain, rtol=1e-10, atol=1e-12)


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
