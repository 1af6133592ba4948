"""Pixel coordinates for the 2D CIPS generator: every pixel is generated from its own (x, y), so any
set of coordinates is an image: the training grid, a patch of it, a denser grid, or a foveated one.

Coordinates are [B, H, W, 2] tensors of (x, y) with x along the width and y along the height, both
in [-1, 1] over the training image (spec 8.1: linspace(-1, 1) along each side).
"""

from __future__ import annotations

import torch

from cips3d.config import finite_number, is_real_number, is_whole_number, whole_count
from cips3d.errors import ConfigError

MAX_GRID_PIXELS = 2**28  # 2 GiB of float32 (x, y) pairs: 10**6 x 10**6 asked for terabytes at once


def _check_grid(height: int, width: int, batch: int, extent: float) -> None:
    """Whole sides of 1 or more and at most MAX_GRID_PIXELS in all; a finite, positive extent (NaN made
    an all-NaN grid, a negative one a mirrored image)."""
    sides = whole_count(height, "height") * whole_count(width, "width")
    if sides * whole_count(batch, "batch") > MAX_GRID_PIXELS:
        raise ConfigError(f"a {width} x {height} coordinate grid of batch {batch} is more than "
                          f"{MAX_GRID_PIXELS:,} pixels at once; render it in parts.")  # fmt: skip
    if not finite_number(extent, "extent") > 0:
        raise ConfigError(f"extent must be positive, got {extent}.")


def plane_grid(height: int, width: int, batch: int = 1, extent: float = 1.0) -> torch.Tensor:
    """[B, H, W, 2]: x = linspace(-extent, extent, W), y = linspace(-extent, extent, H). extent > 1
    extrapolates beyond the training frame; more pixels over the same extent is super-resolution."""
    _check_grid(height, width, batch, extent)
    y = torch.linspace(-extent, extent, height) if height > 1 else torch.zeros(1)
    x = torch.linspace(-extent, extent, width) if width > 1 else torch.zeros(1)
    grid = torch.stack(torch.meshgrid(x, y, indexing="xy"), dim=-1)  # [H, W, 2] as (x, y)
    return grid.expand(batch, height, width, 2)


def cylinder_grid(height: int, width: int, batch: int = 1, turns: float = 1.0, start: float = -1.0,
                  extent: float = 1.0) -> torch.Tensor:  # fmt: skip
    """[B, H, W, 2] for a model with `coordinates='cylinder'`: x = start + 2 * turns * j / W for the
    columns j, wrapped into [-1, 1) (x runs once around the cylinder per 2, so `turns` = 1 is a full
    360-degree panorama whose last column joins its first), y = linspace(-extent, extent, H). A model
    whose embedding has W columns (`Cips2DConfig.grid_width`) has them at x = -1 + 2k / W:
    `cylinder_grid(size, W)` is its training grid."""
    _check_grid(height, width, batch, extent)
    finite_number(start, "start")
    if not finite_number(turns, "turns") > 0:
        raise ConfigError(f"a panorama grid needs turns > 0, got {turns}.")
    # In float64, then wrapped into [-1, 1) (the model reads x periodically): float32 angles far from 0
    # lost their fraction, so x = 100001 (50,000 turns on) rendered another image than x = 1.
    x = ((start + 1 + 2 * turns * torch.arange(width, dtype=torch.float64) / width) % 2 - 1).float()
    y = torch.linspace(-extent, extent, height) if height > 1 else torch.zeros(1)
    grid = torch.stack(torch.meshgrid(x, y, indexing="xy"), dim=-1)
    return grid.expand(batch, height, width, 2)


def patch_grid(size: int, top: int, left: int, patch: int, stride: int = 1) -> torch.Tensor:
    """[1, patch, patch, 2]: the pixels (top + stride * i, left + stride * j) of the size x size
    training grid (the multi-scale patches of CIPS's patch training, spec 8.2)."""
    if min(patch, stride) < 1:  # a negative stride gave a patch of another size, silently
        raise ConfigError(f"a patch needs a side and a stride of 1 or more, got {patch} and {stride}.")
    last = (patch - 1) * stride
    if min(top, left) < 0 or top + last >= size or left + last >= size:
        raise ConfigError(
            f"a {patch}-pixel patch with stride {stride} at ({top}, {left}) leaves the {size}-px grid."
        )
    full = plane_grid(size, size)[0]
    rows = torch.arange(top, top + last + 1, stride)
    cols = torch.arange(left, left + last + 1, stride)
    return full[rows][:, cols][None]


def foveated_points(count: int, fixation: tuple[float, float] = (0.0, 0.0), sharpness: float = 2.0,
                    generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
    """[1, count, 1, 2] coordinates over the [-1, 1]^2 frame, denser around `fixation`.

    Per axis, u ~ U(-1, 1) becomes t = sign(u) |u|^sharpness (1: uniform; larger: more points near
    0), and t in [-1, 0] / [0, 1] is stretched onto [-1, f] / [f, 1] for the fixation's coordinate f.
    Render them and interpolate for a foveated image."""
    if not is_whole_number(count) or count < 1 or not (is_real_number(sharpness) and sharpness > 0):
        raise ConfigError(f"foveated sampling needs a whole count >= 1 and sharpness > 0, got {count!r}, "
                          f"{sharpness!r}.")  # fmt: skip
    fixation = [float(f) for f in fixation] if isinstance(fixation, torch.Tensor) else list(fixation)
    if len(fixation) != 2 or not all(
        is_real_number(f) and -1 < f < 1 for f in fixation
    ):  # (0.3,): (0.3, 0.3)
        raise ConfigError(f"the fixation must lie inside the frame (-1, 1)^2, got {fixation}.")
    u = torch.rand(count, 2, generator=generator) * 2 - 1
    t = u.sign() * u.abs() ** sharpness
    f = torch.tensor(fixation, dtype=t.dtype)
    points = torch.where(t >= 0, f + (1 - f) * t, f + (1 + f) * t)
    return points[None, :, None, :]
