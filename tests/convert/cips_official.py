"""The official 2D CIPS (`CIPSskip`) forward pass, re-stated in the official form for the tests
(spec 8.1): [B, C, H, W] maps, 1x1 grouped convolutions with per-sample weights, `grid_sample` with its
default alignment and the fused LeakyReLU, over a state dict with the official names and shapes.
No official 2D outputs exist in the fixtures; this is the independent statement our generator (products
on [B, H * W, C] rows) is checked against.
"""

from __future__ import annotations

import math
import re

import torch
from torch.nn import functional as F

SQRT2 = math.sqrt(2)
SIZE, FOURIER, EMB, FIRST, WIDTHS, STYLE, MAPPING = 8, 12, 10, 16, (16, 12, 8), 12, 3


def official_state(seed: int = 0, residual: bool = False) -> dict[str, torch.Tensor]:
    """A random `CIPSskip` (or, `residual`, `CIPSres`) state dict with the official names and shapes, in
    official order; every tensor non-trivial (noise weights, biases and the to-RGB bias nonzero)."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale + shift

    def styled(in_dim: int, out_dim: int) -> dict[str, torch.Tensor]:
        return {
            "conv.weight": rand(1, out_dim, in_dim, 1, 1),
            "conv.modulation.weight": rand(in_dim, STYLE),
            "conv.modulation.bias": rand(in_dim, scale=0.1, shift=1.0),
            "noise.weight": rand(1, scale=0.3),
            "activate.bias": rand(out_dim, scale=0.2),
        }

    state = {
        "lff.ffm.conv.weight": rand(FOURIER, 2, 1, 1, scale=2.0),
        "lff.ffm.conv.bias": rand(FOURIER, scale=0.5),
        "emb.input": rand(1, EMB, SIZE, SIZE),
    }

    def to_rgb(prefix: str, c: int) -> dict[str, torch.Tensor]:
        return {
            f"{prefix}.bias": rand(1, 3, 1, 1, scale=0.1),
            f"{prefix}.conv.weight": rand(1, 3, c, 1, 1),
            f"{prefix}.conv.modulation.weight": rand(c, STYLE),
            f"{prefix}.conv.modulation.bias": rand(c, scale=0.1, shift=1.0),
        }

    ins = (FIRST, *WIDTHS[:-1])
    if residual:  # linears.0 the first layer, linears.1... residual pairs with 1x1 skips, one head
        state |= {f"linears.0.{k}": v for k, v in styled(FOURIER + EMB, FIRST).items()}
        for i, (c_in, c) in enumerate(zip(ins, WIDTHS, strict=True)):
            state |= {f"linears.{i + 1}.conv1.{k}": v for k, v in styled(c_in, c).items()}
            state |= {f"linears.{i + 1}.conv2.{k}": v for k, v in styled(c, c).items()}
            if c_in != c:
                state[f"linears.{i + 1}.skip.0.weight"] = rand(c, c_in, 1, 1)
        state |= to_rgb("to_rgb_last", WIDTHS[-1])
    else:
        state |= {f"conv1.{k}": v for k, v in styled(FOURIER + EMB, FIRST).items()}
        for i, (c_in, c) in enumerate(zip(ins, WIDTHS, strict=True)):
            state |= {f"linears.{2 * i}.{k}": v for k, v in styled(c_in, c).items()}
            state |= {f"linears.{2 * i + 1}.{k}": v for k, v in styled(c, c).items()}
        for i, c in enumerate(WIDTHS):
            state |= to_rgb(f"to_rgbs.{i}", c)
    for k in range(1, MAPPING + 1):  # stored N(0, 1) / lr_mul, as EqualLinear draws them
        state[f"style.{k}.weight"] = rand(STYLE, STYLE, scale=100.0)
        state[f"style.{k}.bias"] = rand(STYLE, scale=10.0)
    return state


def official_forward(
    state: dict[str, torch.Tensor],
    z: torch.Tensor,
    coords: torch.Tensor,
    training: bool = False,
    noises: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """The official CIPSskip (or CIPSres) forward (spec 8.1): z [B, D], coords [B, 2, H, W] -> rgb."""
    lr_mul = 0.01
    latent = z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8)
    k = 1
    while f"style.{k}.weight" in state:
        weight, bias = state[f"style.{k}.weight"], state[f"style.{k}.bias"]
        latent = F.linear(latent, weight * lr_mul / math.sqrt(weight.shape[1]))
        latent = F.leaky_relu(latent + bias * lr_mul, 0.2) * SQRT2
        k += 1
    b, _, h, w = coords.shape
    fourier = torch.sin(F.conv2d(coords, state["lff.ffm.conv.weight"], state["lff.ffm.conv.bias"]))
    table = state["emb.input"]
    if training and h == w == table.shape[-1]:
        emb = table.repeat(b, 1, 1, 1)
    else:
        emb = F.grid_sample(table.expand(b, -1, -1, -1), coords.permute(0, 2, 3, 1), mode="bilinear",
                            padding_mode="border", align_corners=False)  # fmt: skip
    x = torch.cat([fourier, emb], 1)
    noises = iter(noises or [])

    def modulated(prefix: str, x: torch.Tensor, demodulate: bool) -> torch.Tensor:
        weight = state[f"{prefix}.conv.weight"]
        _, out_dim, in_dim, _, _ = weight.shape
        mod_w = state[f"{prefix}.conv.modulation.weight"]
        style = F.linear(latent, mod_w / math.sqrt(mod_w.shape[1]), state[f"{prefix}.conv.modulation.bias"])
        per_sample = weight / math.sqrt(in_dim) * style.view(b, 1, in_dim, 1, 1)
        if demodulate:
            per_sample = per_sample * torch.rsqrt(per_sample.square().sum([2, 3, 4]) + 1e-8).view(
                b, out_dim, 1, 1, 1
            )
        grouped = F.conv2d(
            x.reshape(1, b * in_dim, h, w), per_sample.reshape(b * out_dim, in_dim, 1, 1), groups=b
        )
        return grouped.view(b, out_dim, h, w)

    def styled(prefix: str, x: torch.Tensor) -> torch.Tensor:
        out = modulated(prefix, x, demodulate=True)
        noise = next(noises, None)
        if noise is not None:
            out = out + state[f"{prefix}.noise.weight"] * noise
        return F.leaky_relu(out + state[f"{prefix}.activate.bias"].view(1, -1, 1, 1), 0.2) * SQRT2

    if "to_rgb_last.bias" in state:  # CIPSres: (pair(x) + skip(x)) / sqrt(2), one head at the end
        x = styled("linears.0", x)
        k = 1
        while f"linears.{k}.conv1.conv.weight" in state:
            y = styled(f"linears.{k}.conv2", styled(f"linears.{k}.conv1", x))
            skip = state.get(f"linears.{k}.skip.0.weight")
            x = (y + (x if skip is None else F.conv2d(x, skip / math.sqrt(skip.shape[1])))) / SQRT2
            k += 1
        return modulated("to_rgb_last", x, demodulate=False) + state["to_rgb_last.bias"]
    x = styled("conv1", x)
    rgb = 0
    pairs = sum(1 for key in state if re.fullmatch(r"to_rgbs\.\d+\.bias", key))
    for i in range(pairs):
        x = styled(f"linears.{2 * i + 1}", styled(f"linears.{2 * i}", x))
        rgb = rgb + modulated(f"to_rgbs.{i}", x, demodulate=False) + state[f"to_rgbs.{i}.bias"]
    return rgb


def official_coords(size: int, extent: float = 1.0, batch: int = 2) -> torch.Tensor:
    """The official coordinate maps: channel 0 x = linspace along the width, channel 1 y along the height."""
    axis = torch.linspace(-extent, extent, size)
    x = axis.view(1, 1, 1, -1).expand(batch, 1, size, size)
    y = axis.view(1, 1, -1, 1).expand(batch, 1, size, size)
    return torch.cat([x, y], 1)


D_SIZE, D_WIDTH = 8, 512  # StyleGAN2's widths are 512 up to 32 px whatever the multiplier
BLUR = torch.tensor([1.0, 3.0, 3.0, 1.0])


def official_d_state(seed: int = 0, input_channels: int = 3) -> dict[str, torch.Tensor]:
    """A random 8 px CIPS discriminator state dict with the official names, shapes and blur buffers."""
    g = torch.Generator().manual_seed(seed)
    kernel = BLUR[:, None] * BLUR[None, :]
    kernel = kernel / kernel.sum()

    def rand(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    c = D_WIDTH
    return {
        "convs.0.0.weight": rand(c, input_channels, 1, 1),
        "convs.0.1.bias": rand(c, scale=0.1),
        "convs.1.conv1.0.weight": rand(c, c, 3, 3),
        "convs.1.conv1.1.bias": rand(c, scale=0.1),
        "convs.1.conv2.0.kernel": kernel.clone(),
        "convs.1.conv2.1.weight": rand(c, c, 3, 3),
        "convs.1.conv2.2.bias": rand(c, scale=0.1),
        "convs.1.skip.0.kernel": kernel.clone(),
        "convs.1.skip.1.weight": rand(c, c, 1, 1),
        "final_conv.0.weight": rand(c, c + 1, 3, 3),
        "final_conv.1.bias": rand(c, scale=0.1),
        "final_linear.0.weight": rand(c, c * 16),
        "final_linear.0.bias": rand(c, scale=0.1),
        "final_linear.1.weight": rand(1, c),
        "final_linear.1.bias": rand(1, scale=0.1),
    }


def official_d_forward(state: dict[str, torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """StyleGAN2's residual discriminator as CIPS trains it: images [B, C, 8, 8] -> logits [B, 1]."""

    def conv_layer(prefix: str, x: torch.Tensor, down: bool, act: bool = True) -> torch.Tensor:
        index = 0
        weight = state[f"{prefix}.{1 if down else 0}.weight"]
        k = weight.shape[-1]
        if down:  # blur (the [1,3,3,1] kernel, padded so the stride-2 grid stays centred), then stride 2
            p = 2 + (k - 1)
            x = F.pad(x, ((p + 1) // 2, p // 2, (p + 1) // 2, p // 2))
            channels = x.shape[1]
            x = F.conv2d(x, state[f"{prefix}.0.kernel"].flip(0, 1).expand(channels, 1, 4, 4), groups=channels)
            index = 1
        x = F.conv2d(x, weight / math.sqrt(weight[0].numel()), stride=2 if down else 1,
                     padding=0 if down else (k - 1) // 2)  # fmt: skip
        if act:
            x = F.leaky_relu(x + state[f"{prefix}.{index + 1}.bias"].view(1, -1, 1, 1), 0.2) * SQRT2
        return x

    x = conv_layer("convs.0", images, down=False)
    residual = conv_layer("convs.1.conv2", conv_layer("convs.1.conv1", x, down=False), down=True)
    x = (residual + conv_layer("convs.1.skip", x, down=True, act=False)) / SQRT2
    b, c, h, w = x.shape
    group = min(b, 4)
    spread = x.view(group, -1, 1, c, h, w)
    spread = torch.sqrt(spread.var(0, unbiased=False) + 1e-8).mean([2, 3, 4], keepdim=True).squeeze(2)
    x = torch.cat([x, spread.repeat(group, 1, h, w)], 1)
    x = conv_layer("final_conv", x, down=False).flatten(1)
    w0, w1 = state["final_linear.0.weight"], state["final_linear.1.weight"]
    x = F.leaky_relu(F.linear(x, w0 / math.sqrt(w0.shape[1])) + state["final_linear.0.bias"], 0.2) * SQRT2
    return F.linear(x, w1 / math.sqrt(w1.shape[1]), state["final_linear.1.bias"])
