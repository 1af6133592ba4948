"""The GAN losses against closed forms, and R1 against an independent double-backward computation."""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import functional_call, grad

from cips3d.models.discriminator import Discriminator, discriminator_preset
from cips3d.training.losses import d_logistic_loss, g_nonsaturating_loss, r1_penalty

f64 = torch.float64


def softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def test_d_logistic_loss_is_softplus_fake_plus_softplus_minus_real():
    real = torch.tensor([[2.0], [-1.0]], dtype=f64)
    fake = torch.tensor([[0.5], [-3.0]], dtype=f64)
    per_sample = d_logistic_loss(real, fake, reduce=False)
    expected = [softplus(0.5) + softplus(-2.0), softplus(-3.0) + softplus(1.0)]
    assert per_sample.shape == (2, 1)
    assert torch.allclose(per_sample.flatten(), torch.tensor(expected, dtype=f64), atol=1e-15)
    assert torch.allclose(d_logistic_loss(real, fake), per_sample.mean(), atol=1e-15)
    penalty = torch.tensor([[0.25], [0.75]], dtype=f64)
    assert torch.allclose(d_logistic_loss(real, fake, penalty), per_sample.mean() + 0.5, atol=1e-15)
    # A perfect discriminator has a loss near 0; a confused one 2 log 2.
    assert d_logistic_loss(torch.full((1, 1), 30.0), torch.full((1, 1), -30.0)) < 1e-12
    assert math.isclose(
        d_logistic_loss(torch.zeros(3, 1), torch.zeros(3, 1)).item(), 2 * math.log(2), rel_tol=1e-6
    )


def test_g_nonsaturating_loss_is_softplus_of_minus_fake():
    fake = torch.tensor([[1.5], [-0.5]], dtype=f64)
    assert torch.allclose(
        g_nonsaturating_loss(fake, reduce=False).flatten(),
        torch.tensor([softplus(-1.5), softplus(0.5)], dtype=f64),
    )
    assert math.isclose(
        g_nonsaturating_loss(fake).item(), (softplus(-1.5) + softplus(0.5)) / 2, rel_tol=1e-12
    )


def test_r1_of_a_linear_critic_is_half_gamma_times_the_squared_weight_norm():
    """D(x) = <w, x>: the input gradient is w, so the penalty is gamma/2 ||w||^2 and d/dw = gamma w."""
    w = torch.randn(3, 4, 4, dtype=f64, requires_grad=True)
    x = torch.randn(5, 3, 4, 4, dtype=f64, requires_grad=True)
    logits = (x * w).sum((1, 2, 3)).unsqueeze(1)
    penalty = r1_penalty(logits, x, gamma=10.0)
    assert penalty.shape == (5, 1)
    assert torch.allclose(penalty, 5.0 * w.square().sum().expand(5, 1), atol=1e-12)
    penalty.mean().backward()  # needs the create_graph=True inside r1_penalty
    assert torch.allclose(w.grad, 10.0 * w, atol=1e-12)


def test_r1_of_a_quadratic_critic_depends_on_each_sample():
    x = torch.randn(4, 6, dtype=f64, requires_grad=True)
    logits = x.square().sum(1, keepdim=True)  # gradient 2 x
    expected = 0.5 * 3.0 * (2 * x).square().sum(1, keepdim=True)
    assert torch.allclose(r1_penalty(logits, x, gamma=3.0), expected, atol=1e-12)


@pytest.fixture(scope="module")
def tiny_D() -> Discriminator:
    return Discriminator(discriminator_preset("tiny"), torch.Generator().manual_seed(0)).double()


def test_r1_equals_an_independent_double_backward_through_the_discriminator(tiny_D):
    """Penalty and its parameter gradients from r1_penalty + backward, against torch.func's nested grad."""
    reals = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=f64) * 2 - 1
    images = torch.cat([reals, reals])  # [main half; aux half], as the official aux step builds it
    params = {n: p.detach() for n, p in tiny_D.named_parameters()}
    buffers = dict(tiny_D.named_buffers())

    def total_penalty(p, x):
        def logit_sum(v):
            return functional_call(tiny_D, {**p, **buffers}, (v[:2], v[2:]), {"alpha": 0.5}).sum()

        return 5.0 * grad(logit_sum)(x).square().sum()

    expected_value = total_penalty(params, images)
    expected_grads = grad(total_penalty)(params, images)

    tiny_D.zero_grad(set_to_none=True)
    x = images.clone().requires_grad_()
    penalty = r1_penalty(tiny_D(x[:2], x[2:], alpha=0.5), x)
    assert penalty.shape == (4, 1)
    assert torch.allclose(penalty.sum(), expected_value, rtol=1e-10)
    penalty.sum().backward()
    used = [n for n, p in tiny_D.named_parameters() if p.grad is not None]
    assert any(n.startswith("aux.") for n in used) and any(n.startswith("main.") for n in used)
    for name in used:
        assert torch.allclose(dict(tiny_D.named_parameters())[name].grad, expected_grads[name], atol=1e-10), (
            name
        )
    weights = [n for n in used if n.endswith("weight")]
    assert all(dict(tiny_D.named_parameters())[n].grad.abs().sum() > 0 for n in weights)
    tiny_D.zero_grad(set_to_none=True)


def test_r1_per_sample_matches_single_image_calls(tiny_D):
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(2), dtype=f64) * 2 - 1
    x = images.clone().requires_grad_()
    batch = r1_penalty(tiny_D(x), x)
    for i in range(3):
        xi = images[i : i + 1].clone().requires_grad_()
        assert torch.allclose(batch[i], r1_penalty(tiny_D(xi), xi)[0], rtol=1e-10)
