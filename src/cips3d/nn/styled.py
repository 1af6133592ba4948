"""The layers of the 2D CIPS generator (spec 8.1): a modulated fully connected layer with noise and a
biased LeakyReLU (the official `StyledConv` with 1x1 kernels), and the to-RGB head.

Both run on [B, N, C] pixel rows as batched products, like CIPS-3D's INR, and share its
`modulate_weight`. Unlike CIPS-3D they keep StyleGAN2's equalised learning rate: the weight is drawn
N(0, 1) and scaled by 1/sqrt(in) at run time, and the style FC starts with bias 1.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from cips3d import constants as K
from cips3d.nn.equalized import EqualLinear
from cips3d.nn.modulated import modulate_weight


class _ModulatedFC(nn.Module):
    """What both layers hold: a weight [in, out] (the official [1, out, in, 1, 1], transposed) scaled
    by 1/sqrt(in) at run time, the style FC (bias 1 at start) and an output bias (zero at start)."""

    def __init__(self, in_dim: int, out_dim: int, style_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim))
        self.scale = 1 / math.sqrt(in_dim)
        self.modulation = EqualLinear(style_dim, in_dim, bias_init=1.0)
        self.bias = nn.Parameter(torch.empty(out_dim))

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None) -> None:
        self.weight.normal_(generator=generator)
        self.modulation.reset_parameters(generator)
        self.bias.zero_()

    def modulated(self, w: torch.Tensor, demodulate: bool) -> torch.Tensor:
        """w [B, D] -> per-sample weights [B, in, out]."""
        return modulate_weight(
            self.weight * self.scale, self.modulation(w), style_offset=0.0, demodulate=demodulate
        )


class StyledFC(_ModulatedFC):
    """x [B, N, in], w [B, D] (, noise [B, N, 1]) ->
    leaky_relu(x @ W'(w) + noise_weight * noise + b) * sqrt(2), W' demodulated."""

    def __init__(self, in_dim: int, out_dim: int, style_dim: int) -> None:
        super().__init__(in_dim, out_dim, style_dim)
        self.noise_weight = nn.Parameter(torch.empty(1))

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None) -> None:
        super().reset_parameters(generator)
        self.noise_weight.zero_()

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        y = torch.bmm(x, self.modulated(w, demodulate=True))
        if noise is not None:
            y = y + self.noise_weight * noise
        return F.leaky_relu(y + self.bias, K.LEAKY_SLOPE) * K.D_ACT_GAIN


class ToRGB(_ModulatedFC):
    """x [B, N, in], w [B, D] -> x @ (W * s(w)) + b, [B, N, 3]: modulated, not demodulated."""

    def __init__(self, in_dim: int, style_dim: int, channels: int = 3) -> None:
        super().__init__(in_dim, channels, style_dim)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.bmm(x, self.modulated(w, demodulate=False)) + self.bias


class WidthSkip(nn.Module):
    """x [B, N, in] -> x @ (W / sqrt(in)).T, [B, N, out]: the bias-free 1x1 skip of a residual pair whose
    width changes (the official `ConvLayer(in, out, 1, activate=False, bias=False)`), W [out, in]."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))
        self.scale = 1 / math.sqrt(in_dim)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None) -> None:
        self.weight.normal_(generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale)
