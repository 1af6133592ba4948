"""The modulated fully connected layer of CIPS-3D's INR (the official `SinStyleMod`, which has no sine).

Shared with the 2D CIPS generator (`nn.styled`): the math is `modulate_weight`, the layers hold weights.
"""

from __future__ import annotations

import torch
from torch import nn

from cips3d import constants as K
from cips3d.nn.init import empty_linear, kaiming_leaky_, linear_default_


def modulate_weight(
    weight: torch.Tensor,
    style: torch.Tensor,
    eps: float = K.DEMOD_EPS,
    style_offset: float = 1.0,
    demodulate: bool = True,
) -> torch.Tensor:
    """Per-sample weights W'[b] = demod(W * (style_offset + s[b])) (spec 1.5; 8.1 for 2D CIPS).

    Args:
        weight: [in, out], used as x @ W.
        style: [B, in], the output of the modulation FC.
        eps: added under the square root of the demodulation.
        style_offset: added to the style: 1 in CIPS-3D (its FC has zero-mean output), 0 in 2D CIPS
            (whose style FC starts with bias 1 instead).
        demodulate: False for the 2D to-RGB layers.

    Returns:
        [B, in, out], each output column scaled to unit norm over the inputs when demodulated.
    """
    s = style + style_offset if style_offset else style
    w = weight.unsqueeze(0) * s.unsqueeze(-1)
    return w * torch.rsqrt(w.square().sum(dim=1, keepdim=True) + eps) if demodulate else w


class ModulatedLinear(nn.Module):
    """x [B, N, in] -> x @ modulate_weight(W, modulation(w)), no bias.

    Args:
        in_dim: input width.
        out_dim: output width.
        style_dim: width of the style vector w.
    """

    def __init__(self, in_dim: int, out_dim: int, style_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim))
        self.modulation = empty_linear(style_dim, in_dim)
        # Never applied, as in the official layer; kept (frozen) because official checkpoints and the
        # official parameter count (11,287,743 for FFHQ) include it.
        self.norm = nn.LayerNorm(in_dim)
        self.norm.requires_grad_(False)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None) -> None:
        """Official order: the weight is drawn N(0, 1) and then re-drawn Kaiming-normal with fan = out
        (PyTorch's fan-in of an [in, out] tensor); the modulation FC is default-initialised, then its
        weight re-drawn Kaiming-normal."""
        self.weight.normal_(generator=generator)
        kaiming_leaky_(self.weight, generator)
        linear_default_(self.modulation, generator)
        kaiming_leaky_(self.modulation.weight, generator)
        self.norm.reset_parameters()  # ones and zeros: draws nothing

    def modulated_weight(self, style: torch.Tensor) -> torch.Tensor:
        """style [B, D] -> the per-sample weights [B, in, out] (computed once per render, not per chunk)."""
        return modulate_weight(self.weight, self.modulation(style))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """x [B, N, in], style [B, D] -> [B, N, out]."""
        return torch.bmm(x, self.modulated_weight(style))
