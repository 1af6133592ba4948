"""Mapping networks z -> w (spec 1.3): PixelNorm, then Linear [+ LayerNorm] + LeakyReLU layers."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cips3d import constants as K
from cips3d.config import MappingConfig
from cips3d.nn.init import empty_linear, kaiming_leaky_, linear_default_


def pixel_norm(z: torch.Tensor, eps: float = K.PIXEL_NORM_EPS) -> torch.Tensor:
    """z [B, Z] / sqrt(mean(z^2) + eps) over the feature dimension."""
    return z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + eps)


class MappingLayer(nn.Module):
    """Linear, then optionally LayerNorm, then optionally LeakyReLU(0.2)."""

    def __init__(self, in_dim: int, out_dim: int, norm: bool, activate: bool) -> None:
        super().__init__()
        self.linear = empty_linear(in_dim, out_dim)
        self.norm = nn.LayerNorm(out_dim, eps=K.LAYER_NORM_EPS) if norm else None
        self.activate = activate

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None) -> None:
        linear_default_(self.linear, generator)
        kaiming_leaky_(self.linear.weight, generator)
        if self.norm is not None:
            self.norm.reset_parameters()  # ones and zeros: draws nothing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)
        if self.norm is not None:
            x = self.norm(x)
        return F.leaky_relu(x, K.LEAKY_SLOPE) if self.activate else x


class MappingNetwork(nn.Module):
    """z [B, z_dim] -> w [B, hidden_dim]. The last layer has no activation (official head_layers=0)."""

    def __init__(self, config: MappingConfig) -> None:
        super().__init__()
        self.config = config
        n = config.num_layers
        self.layers = nn.ModuleList(
            MappingLayer(
                config.z_dim if i == 0 else config.hidden_dim,
                config.hidden_dim,
                norm=config.layer_norm if i < n - 1 else config.norm_out,
                activate=i < n - 1,
            )
            for i in range(n)
        )

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None) -> None:
        for layer in self.layers:
            layer.reset_parameters(generator)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = pixel_norm(z)
        for layer in self.layers:
            x = layer(x)
        return x
