"""Compositing against closed forms."""

from __future__ import annotations

import math

import torch

from cips3d.rendering.compositing import Composite, composite, sample_deltas, surface_depth


def evenly_spaced(s: int, spacing: float) -> torch.Tensor:
    return (torch.arange(s, dtype=torch.float64) * spacing).view(1, 1, s)


def test_constant_density_gives_exponential_transmittance():
    sigma_value, spacing, s = 3.0, 0.05, 40
    depths = evenly_spaced(s, spacing)
    sigma = torch.full((1, 1, s), sigma_value, dtype=torch.float64)
    features = torch.ones(1, 1, s, 1, dtype=torch.float64)
    out = composite(features, sigma, depths)
    w = out.weights[0, 0]
    transmittance = 1 - torch.cumsum(w, 0)[:-1]  # light left after sample k
    t = depths[0, 0, 1:]
    assert torch.allclose(transmittance, torch.exp(-sigma_value * t), rtol=1e-6)
    assert abs(out.opacity.item() - 1) < 1e-9  # the last sample (delta 1e10) absorbs the rest
    assert math.isclose(out.feature.item(), 1.0, rel_tol=1e-9)


def test_one_opaque_sample_takes_all_the_weight():
    s = 8
    sigma = torch.zeros(1, 1, s, dtype=torch.float64)
    sigma[..., 3] = 1e6
    depths = evenly_spaced(s, 0.1)
    features = torch.arange(s, dtype=torch.float64).view(1, 1, s, 1)
    out = composite(features, sigma, depths)
    expected = torch.zeros(s, dtype=torch.float64)
    expected[3] = 1
    assert torch.allclose(out.weights[0, 0], expected, atol=1e-9)
    assert math.isclose(out.feature.item(), 3.0, rel_tol=1e-9)
    assert math.isclose(out.depth.item(), 0.3, rel_tol=1e-9)


def test_empty_space_and_background_options():
    s = 6
    sigma = torch.full((1, 1, s), -1.0, dtype=torch.float64)  # relu clamps it to empty space
    depths = evenly_spaced(s, 0.1)
    features = torch.full((1, 1, s, 2), 0.25, dtype=torch.float64)
    plain = composite(features, sigma, depths)
    assert plain.opacity.item() == 0 and plain.feature.abs().max() == 0
    white = composite(features, sigma, depths, white_back=True)
    assert torch.allclose(white.feature, torch.ones(1, 1, 2, dtype=torch.float64))
    last = composite(features, sigma, depths, last_back=True)
    assert last.weights[0, 0, -1].item() == 1 and math.isclose(last.depth.item(), 0.5)
    soft = composite(features, sigma, depths, clamp_mode="softplus")
    assert soft.opacity.item() > 0.9  # softplus(-1) > 0 and the last delta is 1e10


def test_noise_is_added_before_the_clamp():
    sigma = torch.full((1, 1, 3), -1.0, dtype=torch.float64)
    depths = evenly_spaced(3, 0.5)
    features = torch.ones(1, 1, 3, 1, dtype=torch.float64)
    noise = torch.tensor([[[3.0, 0.0, 0.0]]], dtype=torch.float64)
    out = composite(features, sigma, depths, noise=noise)
    assert math.isclose(out.weights[0, 0, 0].item(), 1 - math.exp(-0.5 * 2.0), rel_tol=1e-12)


def test_last_delta_is_huge():
    deltas = sample_deltas(evenly_spaced(4, 0.2))
    assert torch.allclose(deltas[0, 0, :3], torch.full((3,), 0.2, dtype=torch.float64))
    assert deltas[0, 0, 3] == 1e10


def test_surface_depth_normalises_by_opacity_and_uses_far_for_empty_rays():
    weights = torch.tensor([[0.0, 0.5], [0.0, 0.0], [1.0, 0.0]])  # [R, S] at depths 0.9 and 1.0
    comp = Composite(
        feature=torch.zeros(3, 1), depth=(weights * torch.tensor([0.9, 1.0])).sum(-1), weights=weights,
        opacity=weights.sum(-1),
    )  # fmt: skip
    assert torch.allclose(surface_depth(comp, far=1.12), torch.tensor([1.0, 1.12, 0.9]))


def test_surface_depth_after_last_back_stays_between_the_samples():
    """last_back puts a nearly transparent ray's leftover on its last sample: the weights the depth was
    taken with sum to 1, and dividing by the (tiny) opacity instead gave depths in the hundreds."""
    depths = evenly_spaced(6, 0.1) + 0.88
    sigma = torch.full((1, 1, 6), -1.0, dtype=torch.float64)
    sigma[..., 1] = 1e-4  # a faint wisp: opacity 1e-5
    comp = composite(torch.ones(1, 1, 6, 1, dtype=torch.float64), sigma, depths, last_back=True)
    assert comp.opacity.item() < 1e-4
    assert 0.88 < surface_depth(comp, far=1.5).item() <= depths.max().item()


def test_parts_in_their_own_order_composite_like_features_sorted_by_depth():
    """`order` moves the weights back to the parts' order: the sorted composite, its options and its
    gradients, up to the rounding of the sum."""
    g = torch.Generator().manual_seed(0)
    fine, coarse = (torch.randn(2, 5, n, 4, generator=g, dtype=torch.float64) for n in (3, 4))
    depths, order = torch.sort(torch.rand(2, 5, 7, generator=g, dtype=torch.float64), dim=-1)
    sigma = torch.randn(2, 5, 7, generator=g, dtype=torch.float64).abs() * 5
    fine.requires_grad_(), coarse.requires_grad_(), sigma.requires_grad_()
    for options in ({}, {"white_back": True}, {"last_back": True}):
        sorted_features = torch.cat([fine, coarse], dim=-2).gather(-2, order[..., None].expand(-1, -1, -1, 4))
        expected = composite(sorted_features, sigma, depths, **options)
        got = composite([fine, coarse], sigma, depths, order=order, **options)
        assert not torch.equal(sorted_features, torch.cat([fine, coarse], dim=-2))  # the order matters
        for name in ("feature", "depth", "weights", "opacity"):
            assert torch.allclose(getattr(got, name), getattr(expected, name), atol=1e-12), (options, name)
        grads = torch.autograd.grad(got.feature.square().sum(), [fine, coarse, sigma])
        expected_grads = torch.autograd.grad(expected.feature.square().sum(), [fine, coarse, sigma])
        for a, b in zip(grads, expected_grads, strict=True):
            assert torch.allclose(a, b, atol=1e-12), options
