"""Initialisation rules of the official code, each drawing from an explicit `torch.Generator`.

They reproduce the official draws call for call: run in the official order with a generator seeded
like `torch.manual_seed(s)`, they give the official weights bit for bit (tested against the fixture).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cips3d import constants as K


def empty_linear(in_dim: int, out_dim: int) -> nn.Linear:
    """An `nn.Linear` whose construction draws nothing (weights are set by an explicit init)."""
    return nn.utils.skip_init(nn.Linear, in_dim, out_dim)


@torch.no_grad()
def linear_default_(linear: nn.Linear, generator: torch.Generator | None) -> None:
    """PyTorch's own `nn.Linear` init: weight Kaiming-uniform(a=sqrt 5), bias U(+-1/sqrt(fan_in))."""
    nn.init.kaiming_uniform_(linear.weight, a=math.sqrt(5), generator=generator)
    bound = 1 / math.sqrt(linear.in_features) if linear.in_features > 0 else 0.0
    nn.init.uniform_(linear.bias, -bound, bound, generator=generator)


@torch.no_grad()
def kaiming_leaky_(weight: torch.Tensor, generator: torch.Generator | None) -> None:
    """Kaiming-normal for LeakyReLU(0.2), fan-in mode (PyTorch's fan-in: `weight.shape[1]`)."""
    nn.init.kaiming_normal_(
        weight, a=K.LEAKY_SLOPE, mode="fan_in", nonlinearity="leaky_relu", generator=generator
    )


@torch.no_grad()
def frequency_init_(weight: torch.Tensor, freq: float, generator: torch.Generator | None) -> None:
    """SIREN-style U(+-sqrt(6 / fan_in) / freq), fan_in = last dimension (pi-GAN `frequency_init`)."""
    bound = math.sqrt(6 / weight.size(-1)) / freq
    weight.uniform_(-bound, bound, generator=generator)
