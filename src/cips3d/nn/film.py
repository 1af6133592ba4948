"""The FiLM-sine layer of pi-GAN, as the CIPS-3D NeRF uses it (spec 1.4)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from cips3d import constants as K
from cips3d.nn.init import empty_linear, frequency_init_, linear_default_


class FoldedFiLM(NamedTuple):
    """A FiLM-sine layer with one image's frequencies folded in: y = sin(x @ weight + bias)."""

    weight: torch.Tensor
    """[B, in, out] = W^T * gamma."""
    bias: torch.Tensor
    """[B, 1, out] = gamma * b + beta."""


def film_sine(x: torch.Tensor, folded: FoldedFiLM) -> torch.Tensor:
    """x [B, N, in] -> sin(x @ weight + bias) [B, N, out]; the sine is in place when no gradient is needed."""
    h = torch.baddbmm(folded.bias, x, folded.weight)
    return torch.sin_(h) if not (torch.is_grad_enabled() and h.requires_grad) else torch.sin(h)


class FiLMSine(nn.Module):
    """y = sin(gamma * (W x + b) + beta) with gamma = 15 * frequency(w) + 30 and beta = phase(w).

    Args:
        in_dim: input width.
        out_dim: output width.
        style_dim: width of the style vector w.
    """

    def __init__(self, in_dim: int, out_dim: int, style_dim: int) -> None:
        super().__init__()
        self.linear = empty_linear(in_dim, out_dim)
        self.frequency = empty_linear(style_dim, out_dim)  # official name: gain_fc
        self.phase = empty_linear(style_dim, out_dim)  # official name: bias_fc

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None) -> None:
        """Official order: linear (default, then frequency init 25), then frequency and phase FCs
        (default init with weights scaled by 0.25)."""
        linear_default_(self.linear, generator)
        frequency_init_(self.linear.weight, K.SIREN_FREQUENCY_INIT, generator)
        for fc in (self.frequency, self.phase):
            linear_default_(fc, generator)
            fc.weight.mul_(K.FILM_STYLE_WEIGHT_SCALE)

    def modulation(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """style [B, D] -> (gamma [B, 1, out], beta [B, 1, out])."""
        gamma = self.frequency(style) * K.FILM_FREQ_SCALE + K.FILM_FREQ_BIAS
        beta = self.phase(style)
        return gamma.unsqueeze(1), beta.unsqueeze(1)

    def fold(self, style: torch.Tensor) -> FoldedFiLM:
        """style [B, D] -> this layer with the frequencies and phases of each image folded in.

        gamma * (W x + b) + beta is computed as x (W^T gamma) + (gamma b + beta): the activation is
        touched once instead of three times, and the folding is done once per render, not per chunk.
        """
        gamma, beta = self.modulation(style)  # [B, 1, out]
        weight = self.linear.weight.t().unsqueeze(0) * gamma  # [B, in, out]
        return FoldedFiLM(weight, self.linear.bias * gamma + beta)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """x [B, N, in], style [B, D] -> [B, N, out]."""
        return film_sine(x, self.fold(style))
