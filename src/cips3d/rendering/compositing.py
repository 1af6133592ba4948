"""Volume compositing (spec 2.5; pi-GAN `fancy_integration`), pure and with injected noise."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from cips3d import constants as K
from cips3d.rendering.scans import cumprod_last


@dataclass(frozen=True)
class Composite:
    """What compositing one set of rays gives."""

    feature: torch.Tensor
    """[B, R, C] sum_k w_k f_k (plus the leftover transmittance with white_back)."""
    depth: torch.Tensor
    """[B, R] expected depth sum_k w_k t_k (t: distance along the unit ray)."""
    weights: torch.Tensor
    """[B, R, S] compositing weights w_k = alpha_k T_k (last one raised by last_back)."""
    opacity: torch.Tensor
    """[B, R] sum_k w_k before last_back: the ray's accumulated opacity."""


def alphas_from_sigma(
    sigma: torch.Tensor, deltas: torch.Tensor, noise: torch.Tensor | None = None, clamp_mode: str = "relu"
) -> torch.Tensor:
    """alpha = 1 - exp(-delta * clamp(sigma + noise)); all [B, R, S]. `noise` is already scaled."""
    if noise is not None:
        sigma = sigma + noise
    density = F.softplus(sigma) if clamp_mode == "softplus" else F.relu(sigma)
    return 1 - torch.exp(-deltas * density)


def weights_from_alphas(alphas: torch.Tensor) -> torch.Tensor:
    """w_k = alpha_k * prod_{j<k} (1 - alpha_j + 1e-10); [B, R, S] -> [B, R, S]."""
    shifted = torch.cat([torch.ones_like(alphas[..., :1]), 1 - alphas + K.TRANSMITTANCE_EPS], dim=-1)
    return alphas * cumprod_last(shifted)[..., :-1]


def sample_deltas(depths: torch.Tensor) -> torch.Tensor:
    """[B, R, S] sorted depths -> [B, R, S] spacings, the last one 1e10 (or the largest the dtype holds:
    65504 in float16, where it is just as infinite for exp(-delta * sigma))."""
    last = torch.full_like(depths[..., :1], min(K.LAST_DELTA, torch.finfo(depths.dtype).max))
    return torch.cat([depths[..., 1:] - depths[..., :-1], last], dim=-1)


def composite(
    features: torch.Tensor | Sequence[torch.Tensor],
    sigma: torch.Tensor,
    depths: torch.Tensor,
    noise: torch.Tensor | None = None,
    clamp_mode: str = "relu",
    white_back: bool = False,
    last_back: bool = False,
    order: torch.Tensor | None = None,
) -> Composite:
    """Alpha-composite samples along each ray.

    Args:
        features: [B, R, S, C] per-sample features in depth order; or, with `order`, parts
            [B, R, S_k, C] (sum of S_k = S) whose concatenation along the samples, taken in `order`, is
            in depth order.
        sigma: [B, R, S] raw densities, in depth order.
        depths: [B, R, S] sorted depths along the unit ray.
        noise: [B, R, S] density noise (already multiplied by its std), or None.
        clamp_mode: 'relu' or 'softplus'.
        white_back: add 1 - sum(w) (taken before last_back) to every feature channel.
        last_back: add 1 - sum(w) to the last weight.
        order: [B, R, S] the indices that sorted the concatenated samples (`torch.sort`), or None.

    Returns:
        A `Composite` (weights in depth order); the depth uses the final weights (after last_back), as
        the official code does.
    """
    alphas = alphas_from_sigma(sigma, sample_deltas(depths), noise, clamp_mode)
    weights = weights_from_alphas(alphas)
    opacity = weights.sum(dim=-1)
    if last_back:
        weights = torch.cat([weights[..., :-1], weights[..., -1:] + (1 - opacity).unsqueeze(-1)], dim=-1)
    if order is None:
        feature = (weights.unsqueeze(-1) * features).sum(dim=-2)
    else:
        feature = _weighted_sum_of_parts(features, weights, order)
    if white_back:
        feature = feature + (1 - opacity).unsqueeze(-1)
    depth = (weights * depths).sum(dim=-1)
    return Composite(feature=feature, depth=depth, weights=weights, opacity=opacity)


def _weighted_sum_of_parts(
    parts: Sequence[torch.Tensor], weights: torch.Tensor, order: torch.Tensor
) -> torch.Tensor:
    """sum_i w_i f_i over the samples, with the features left in their concatenated order.

    The sum does not depend on the order of its terms, so the weights [B, R, S] move back to the
    features' order, instead of every feature [B, R, S, C] moving into depth order (C times less data,
    and no concatenated copy). Only the rounding of the sum differs from the sorted sum (~1e-7).
    """
    unsorted = torch.zeros_like(weights).scatter(-1, order, weights)
    total, start = None, 0
    for part in parts:
        w = unsorted[..., start : start + part.shape[-2]].unsqueeze(-1)
        term = (w * part).sum(dim=-2)
        total = term if total is None else total + term
        start += part.shape[-2]
    return total


def surface_depth(comp: Composite, far: float, eps: float = 1e-6) -> torch.Tensor:
    """[B, R] expected depth of what a ray hits: sum w t / sum w, and `far` where the ray hits nothing.

    The official `depth` (sum w t) shrinks towards 0 on transparent rays; this one does not. The sum of
    the weights is that of the weights the depth was taken with: after last_back they sum to 1 (the
    leftover sits on the last sample, near `far`), and dividing by the opacity instead would blow up.
    """
    total = comp.weights.sum(dim=-1)
    return torch.where(total > eps, comp.depth / total.clamp_min(eps), torch.full_like(comp.depth, far))
