"""Sliced Wasserstein distance between image sets on Laplacian-pyramid patches (Karras et al. 2018,
progressive GAN, appendix D): per pyramid level, random 7x7 patches are normalised per channel and
compared along random 1-D projections. Reported x 1e3 per level, and their mean, as in that paper.

One deliberate difference: the paper normalises each set with its own per-channel statistics, which
hides a global colour shift; we normalise both sets with their pooled statistics, so it counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from cips3d.errors import ConfigError
from cips3d.models.inputs import refuse_non_finite, require_tensor
from cips3d.seeding import seeded_generator

# Progressive-GAN defaults: 7x7 patches, 128 per image and level, 512 directions, 4 repeats, levels
# down to 16 px.
PATCH_SIZE = 7
PATCHES_PER_IMAGE = 128
DIRECTIONS = 512
REPEATS = 4
MIN_LEVEL_SIZE = 16
_GAUSS = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0  # the 5-tap binomial of the Laplacian pyramid


@dataclass(frozen=True)
class SWDResult:
    per_level: list[float]
    """SWD x 1e3 per pyramid level, finest first."""
    mean: float


def _blur(x: torch.Tensor) -> torch.Tensor:
    k = _GAUSS.to(x)
    kernel = (k[:, None] * k[None, :]).expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=x.shape[1])


def pyramid_sizes(height: int, width: int, min_size: int = MIN_LEVEL_SIZE) -> list[tuple[int, int]]:
    """(H, W) of each level of `laplacian_pyramid` on height x width images, finest first: halved (as
    taking every second pixel does, rounding up) while the shorter side would stay >= min_size."""
    sizes = [(height, width)]
    while min(sizes[-1]) // 2 >= min_size:
        sizes.append(((sizes[-1][0] + 1) // 2, (sizes[-1][1] + 1) // 2))
    return sizes


def laplacian_pyramid(images: torch.Tensor, min_size: int = MIN_LEVEL_SIZE) -> list[torch.Tensor]:
    """[N, C, H, W] -> band-pass levels, finest first, then the low-pass residual (shorter side >=
    min_size); their sizes are `pyramid_sizes`."""
    levels, current = [], images
    for _ in pyramid_sizes(*images.shape[-2:], min_size)[1:]:
        down = _blur(current)[..., ::2, ::2]
        up = F.interpolate(down, size=current.shape[-2:], mode="bilinear", align_corners=False)
        levels.append(current - up)
        current = down
    levels.append(current)
    return levels


def describe_swd(height: int, width: int) -> str:
    """The SWD protocol at images of `height` x `width`, as `swd` runs it there: the pyramid's level
    sizes and the patch side (both shrink on images under MIN_LEVEL_SIZE px)."""
    sides = [min(size) for size in pyramid_sizes(height, width)]
    patch = min(PATCH_SIZE, sides[-1])
    levels = " -> ".join(str(s) for s in sides)
    small = (
        ""
        if sides[0] >= MIN_LEVEL_SIZE
        else (f"; below {MIN_LEVEL_SIZE} px there is one level, not comparable with scores of larger images")
    )
    return (f"Laplacian pyramid {levels} px (short side), {patch}x{patch} patches, {PATCHES_PER_IMAGE} per "
            f"image, {DIRECTIONS} x {REPEATS} projections, x1e3{small}")  # fmt: skip


def _patches(level: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` random PATCH_SIZE^2 patches per image -> descriptors [N * count, C * 7 * 7]."""
    n, c, h, w = level.shape
    p = min(PATCH_SIZE, h, w)
    ys = torch.randint(0, h - p + 1, (n, count), generator=generator)
    xs = torch.randint(0, w - p + 1, (n, count), generator=generator)
    offsets = torch.arange(p)
    rows = (ys[..., None] + offsets)[..., :, None].expand(n, count, p, p)
    cols = (xs[..., None] + offsets)[..., None, :].expand(n, count, p, p)
    flat = (rows * w + cols).reshape(n, 1, count * p * p).expand(n, c, -1).to(level.device)
    picked = level.reshape(n, c, h * w).gather(2, flat).reshape(n, c, count, p * p)
    return picked.permute(0, 2, 1, 3).reshape(n * count, c * p * p)


def _normalise(a: torch.Tensor, b: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero mean and unit std per colour channel over the descriptors of both sets together."""
    both = torch.cat([a, b]).reshape(a.shape[0] + b.shape[0], channels, -1)
    mean = both.mean(dim=(0, 2), keepdim=True)
    std = both.std(dim=(0, 2), keepdim=True).clamp_min(1e-8)

    def norm(d: torch.Tensor) -> torch.Tensor:
        return ((d.reshape(d.shape[0], channels, -1) - mean) / std).reshape(d.shape)

    return norm(a), norm(b)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, generator: torch.Generator) -> float:
    """Mean over REPEATS x DIRECTIONS random unit projections of the 1-D Wasserstein-1 distance."""
    n = min(a.shape[0], b.shape[0])
    a, b = a[:n], b[:n]
    total = 0.0
    for _ in range(REPEATS):
        dirs = torch.randn(a.shape[1], DIRECTIONS, generator=generator).to(a)
        dirs = dirs / dirs.norm(dim=0, keepdim=True)
        # numpy sorts rows of floats several times faster than torch on the CPU.
        pa = np.sort((dirs.T @ a.T).cpu().numpy(), axis=-1)
        pb = np.sort((dirs.T @ b.T).cpu().numpy(), axis=-1)
        total += float(np.abs(pa - pb).mean())
    return total / REPEATS


def swd(images_a: torch.Tensor, images_b: torch.Tensor, seed: int = 0) -> SWDResult:
    """SWD between two image sets [N, C, H, W] of the same size (any value range, compared as given).

    Deterministic for a given seed; identical sets give 0.
    """
    for name, images in (("the first", images_a), ("the second", images_b)):
        require_tensor(images, f"{name} image set")
        if images.ndim != 4 or images.shape[0] == 0:
            raise ConfigError(f"{name} image set must be [N, C, H, W] with N >= 1, got {list(images.shape)}.")
        refuse_non_finite(images, f"{name} image set")  # NaN compared as NaN: a score of nan
    if images_a.shape[1:] != images_b.shape[1:]:
        raise ConfigError(f"image sets differ in shape: {tuple(images_a.shape)} vs {tuple(images_b.shape)}.")
    generator = seeded_generator(seed)
    channels = images_a.shape[1]
    per_level = []
    for la, lb in zip(laplacian_pyramid(images_a.float()), laplacian_pyramid(images_b.float()), strict=True):
        state = generator.get_state()  # the same patch positions for both sets
        da = _patches(la, PATCHES_PER_IMAGE, generator)
        generator.set_state(state)
        da, db = _normalise(da, _patches(lb, PATCHES_PER_IMAGE, generator), channels)
        per_level.append(sliced_wasserstein(da, db, generator) * 1e3)
    return SWDResult(per_level=per_level, mean=sum(per_level) / len(per_level))
