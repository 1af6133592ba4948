"""The discriminator of 2D CIPS (spec 8.2): StyleGAN2's residual discriminator.

    image [B, 3 or 5, S, S] -> 1x1 ConvLayer -> ResBlocks halving the size down to 4 x 4
        -> minibatch standard deviation (one more channel) -> 3x3 ConvLayer -> linear -> linear -> [B, 1]

Built from the same equalised-learning-rate layers (blur, ConvLayer, ResBlock, EqualLinear) as CIPS-3D's
discriminator. At 256 px with channel multiplier 2 it has 28,864,129 parameters (StyleGAN2's count).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cips3d.config_2d import Cips2DDiscriminatorConfig
from cips3d.errors import ConfigError
from cips3d.nn.equalized import ConvLayer, EqualLinear, ResBlock
from cips3d.seeding import check_generator

STDDEV_EPS = 1e-8  # StyleGAN2's minibatch-stddev: sqrt(var + 1e-8)


def minibatch_stddev(x: torch.Tensor, group: int) -> torch.Tensor:
    """x [B, C, H, W] -> [B, C + 1, H, W]: appends, for every sample, the mean over channels and pixels
    of the standard deviation across its group. Groups are strided as StyleGAN2 forms them: with
    B = group * M, sample b is in the group of the samples b mod M."""
    b, c, h, w = x.shape
    group = min(b, group)
    if b % group:
        raise ConfigError(f"the batch ({b}) must be a multiple of the minibatch-stddev group ({group}).")
    grouped = x.reshape(group, b // group, c, h, w)
    spread = torch.sqrt(grouped.var(0, unbiased=False) + STDDEV_EPS).mean(dim=(1, 2, 3))  # [B / group]
    stat = spread.repeat(group)[:, None, None, None].expand(b, 1, h, w)
    return torch.cat([x, stat], dim=1)


class Discriminator2D(nn.Module):
    """images [B, input_channels, size, size] -> logits [B, 1] (see the module docstring)."""

    def __init__(self, config: Cips2DDiscriminatorConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        ch = config.channels
        self.from_rgb = ConvLayer(config.input_channels, ch(config.size), 1)
        sizes = [2**i for i in range(int(math.log2(config.size)), 2, -1)]  # size, size / 2, ..., 8
        self.blocks = nn.ModuleList(ResBlock(ch(s), ch(s // 2)) for s in sizes)
        self.final_conv = ConvLayer(ch(4) + 1, ch(4), 3)
        self.final_linear = EqualLinear(ch(4) * 4 * 4, ch(4), activate=True)
        self.out = EqualLinear(ch(4), 1)
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        check_generator(generator)
        for layer in (self.from_rgb, *self.blocks, self.final_conv, self.final_linear, self.out):
            layer.reset_parameters(generator)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size, channels = self.config.size, self.config.input_channels
        if images.dim() != 4 or images.shape[1:] != (channels, size, size):
            raise ConfigError(
                f"the discriminator takes [B, {channels}, {size}, {size}], got {list(images.shape)}."
            )
        x = self.from_rgb(images)
        for block in self.blocks:
            x = block(x)
        x = self.final_conv(minibatch_stddev(x, self.config.stddev_group))
        return self.out(self.final_linear(x.flatten(1)))
