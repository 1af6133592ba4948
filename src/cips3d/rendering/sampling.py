"""Depths along rays: stratified samples with jitter, and importance sampling (spec 2.3, 2.6).

All randomness is injected: `jitter_u` and `u` are uniform draws made by the caller, so that the same
numbers can be replayed (or replaced by their deterministic values).
"""

from __future__ import annotations

import torch

from cips3d import constants as K
from cips3d.rendering.scans import cumsum_last


def coarse_depths(
    ray_start: float, ray_end: float, num_steps: int, device=None, dtype=torch.float32
) -> torch.Tensor:
    """[S] evenly spaced depths from `ray_start` to `ray_end` (both included)."""
    return torch.linspace(ray_start, ray_end, num_steps, device=device, dtype=dtype)


def jitter_offsets(depths: torch.Tensor, jitter_u: torch.Tensor | None) -> torch.Tensor | None:
    """Stratified jitter: offset = (u - 0.5) * spacing, spacing = depths[1] - depths[0].

    Args:
        depths: [S] evenly spaced depths.
        jitter_u: [B, R, S] uniform draws in [0, 1), or None for no jitter.

    Returns:
        [B, R, S] offsets, or None when there is no jitter.
    """
    if jitter_u is None:
        return None
    spacing = depths[1] - depths[0] if depths.numel() > 1 else torch.zeros((), dtype=depths.dtype)
    return (jitter_u - 0.5) * spacing


def midpoints(depths: torch.Tensor) -> torch.Tensor:
    """[..., S] -> [..., S-1] midpoints of consecutive depths."""
    return 0.5 * (depths[..., :-1] + depths[..., 1:])


def sample_pdf(
    bins: torch.Tensor, weights: torch.Tensor, u: torch.Tensor, eps: float = K.PDF_DENOM_EPS
) -> torch.Tensor:
    """Inverse-CDF sampling of depths (NeRF's sample_pdf as pi-GAN uses it; spec Correction 12).

    Args:
        bins: [N, M+1] bin edges (the midpoints of the coarse depths).
        weights: [N, M] non-negative weights of the interior bins; `eps` is added here.
        u: [N, K] uniform numbers in [0, 1] (linspace(0, 1, K) for the deterministic sampler).
        eps: added to the weights, and the floor under which a cdf gap counts as empty.

    Returns:
        [N, K] depths, each inside the bin whose cdf interval holds its u.
    """
    weights = weights + eps
    pdf = weights / weights.sum(dim=-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), cumsum_last(pdf)], dim=-1)  # [N, M+1]
    u = u.contiguous()
    index = torch.searchsorted(cdf, u)  # left side
    below = (index - 1).clamp(min=0)
    above = index.clamp(max=weights.shape[-1])
    cdf_below, cdf_above = cdf.gather(1, below), cdf.gather(1, above)
    bins_below, bins_above = bins.gather(1, below), bins.gather(1, above)
    denom = cdf_above - cdf_below
    denom = torch.where(denom < eps, torch.ones_like(denom), denom)
    return bins_below + (u - cdf_below) / denom * (bins_above - bins_below)


def deterministic_u(rows: int, num: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """[rows, num] evenly spaced u = linspace(0, 1, num) per row (the official `det=True`)."""
    return torch.linspace(0, 1, num, device=device, dtype=dtype).expand(rows, num)


def importance_depths(depths: torch.Tensor, weights: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
    """Fine depths from coarse ones (spec 2.6): bins are the coarse midpoints, the interior weights
    (+1e-5, and +1e-5 again inside `sample_pdf`) give the pdf.

    Args:
        depths: [B, R, S] sorted (jittered) coarse depths.
        weights: [B, R, S] compositing weights of the coarse samples.
        u: [B, R, S] uniform draws, or None for the deterministic linspace.

    Returns:
        [B, R, S] fine depths (no gradient).
    """
    b, r, s = depths.shape
    bins = midpoints(depths.reshape(b * r, s))
    interior = (weights.reshape(b * r, s) + K.IMPORTANCE_WEIGHT_EPS)[:, 1:-1]
    u = deterministic_u(b * r, s, depths.device, depths.dtype) if u is None else u.reshape(b * r, s)
    return sample_pdf(bins, interior, u).reshape(b, r, s).detach()
