"""Depth sampling: stratified jitter and inverse-CDF importance sampling."""

from __future__ import annotations

import torch

from cips3d.rendering.sampling import (
    coarse_depths,
    deterministic_u,
    importance_depths,
    jitter_offsets,
    sample_pdf,
)


def test_importance_samples_of_a_single_nonzero_bin_stay_in_it():
    bins = torch.linspace(0.0, 1.0, 11).expand(5, 11)
    weights = torch.zeros(5, 10)
    for row, j in enumerate((0, 3, 5, 8, 9)):
        weights[row, j] = 1.0
    u = torch.linspace(0.01, 0.99, 64).expand(5, 64)
    samples = sample_pdf(bins, weights, u)
    for row, j in enumerate((0, 3, 5, 8, 9)):
        assert samples[row].min() >= bins[row, j] - 1e-6 and samples[row].max() <= bins[row, j + 1] + 1e-6


def test_uniform_weights_give_the_inverse_of_a_linear_cdf():
    bins = torch.linspace(2.0, 3.0, 6).expand(1, 6)
    u = torch.rand(1, 100, generator=torch.Generator().manual_seed(0))
    samples = sample_pdf(bins, torch.ones(1, 5), u)
    assert torch.allclose(samples, 2.0 + u, atol=1e-5)


def test_deterministic_u_is_evenly_spaced_per_ray():
    u = deterministic_u(3, 5)
    assert torch.equal(u[2], torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))


def test_jitter_moves_each_sample_within_half_a_spacing():
    t = coarse_depths(0.88, 1.12, 12)
    assert torch.allclose(t[1] - t[0], torch.tensor(0.24 / 11))
    u = torch.rand(2, 7, 12, generator=torch.Generator().manual_seed(1))
    offsets = jitter_offsets(t, u)
    assert offsets.abs().max() <= (t[1] - t[0]) / 2 + 1e-7
    assert jitter_offsets(t, None) is None
    assert torch.equal(jitter_offsets(t, torch.full((1, 1, 12), 0.5)), torch.zeros(1, 1, 12))


def test_importance_depths_follow_the_coarse_weights():
    depths = coarse_depths(0.0, 1.1, 12).expand(1, 1, 12)
    weights = torch.zeros(1, 1, 12)
    weights[..., 6] = 1.0  # interior sample 6 -> bins between the midpoints around it
    fine = importance_depths(depths, weights, torch.linspace(0.05, 0.95, 12).view(1, 1, 12))
    assert fine.min() >= 0.55 - 1e-6 and fine.max() <= 0.65 + 1e-6
    assert not fine.requires_grad
