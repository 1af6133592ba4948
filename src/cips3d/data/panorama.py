"""Procedural 360-degree landscape panoramas: training data for the 2D generator's cylinder coordinates.

Every image is a full turn around the viewer: column j looks at the azimuth theta = 2 pi j / W, so the
last column is followed by the first. Each one has a sky that brightens towards the horizon, a sun at
a random azimuth and elevation, two mountain ridges and a foreground below the horizon. Ridges are sums
of sines of whole turns (sin(f theta + phase), integer f), and the sun's distance is measured around
the circle, so nothing jumps at the seam: the left and right edges join as well as any two
neighbouring columns do. Images are rendered at 2x and box-filtered.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from cips3d.data.zip_tool import encode_png, write_image_zip
from cips3d.errors import ConfigError

SUPERSAMPLE = 2
HORIZON = 0.62  # the foreground starts at this fraction of the height, from the top
RIDGE_FREQUENCIES = torch.arange(1, 6, dtype=torch.float32)  # whole turns: 1 to 5 hills per panorama


@dataclass(frozen=True)
class PanoramaStats:
    dest: Path
    count: int
    height: int
    width: int


def _uniform(g: torch.Generator, n: int, lo: float, hi: float, *shape: int) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, *shape, generator=g)


def _ridge(
    g: torch.Generator, n: int, theta: torch.Tensor, base: tuple[float, float], amp: float
) -> torch.Tensor:
    """[n, W] heights (fractions of the height from the top) of a periodic ridge line."""
    phases = _uniform(g, n, 0, 2 * math.pi, len(RIDGE_FREQUENCIES))
    amps = _uniform(g, n, 0, amp, len(RIDGE_FREQUENCIES)) / RIDGE_FREQUENCIES
    waves = torch.sin(RIDGE_FREQUENCIES[None, :, None] * theta[None, None, :] + phases[..., None])
    return _uniform(g, n, *base, 1) + (amps[..., None] * waves).sum(1)


def render_panoramas(count: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """`count` panoramas -> float [N, 3, height, width] in [0, 1] (see the module docstring)."""
    g, n = generator, count
    rows, cols = height * SUPERSAMPLE, width * SUPERSAMPLE
    theta = (torch.arange(cols) + 0.5) * (2 * math.pi / cols)  # [cols] azimuths
    v = (torch.arange(rows) + 0.5) / rows  # [rows] 0 at the top, 1 at the bottom
    column = v[None, None, :, None]  # [1, 1, rows, 1], to broadcast over [n, 3, rows, cols]

    blue = torch.tensor([0.15, 0.3, 0.6])  # skies from deep blue to dusk: blue plus a random tint
    zenith = (blue + _uniform(g, n, -0.15, 0.2, 3)).clamp(0, 1)
    horizon = _uniform(g, n, 0.6, 1.0, 3)
    t = (column / HORIZON).clamp(max=1)
    image = (zenith[..., None, None] * (1 - t) + horizon[..., None, None] * t).expand(n, 3, rows, cols)

    sun_theta, sun_v = _uniform(g, n, 0, 2 * math.pi, 1), _uniform(g, n, 0.12, 0.4, 1)
    around = torch.atan2(torch.sin(theta - sun_theta), torch.cos(theta - sun_theta)) / (2 * math.pi)
    dx = around[:, None, :] * cols / rows  # [n, 1, cols] in units of the height
    distance = torch.sqrt(dx**2 + (v[None, :, None] - sun_v[..., None]) ** 2)  # [n, rows, cols]
    glow = torch.exp(-((distance / 0.12) ** 2)) * 0.5 + (distance < 0.05).float()
    image = image + glow[:, None] * torch.tensor([1.0, 0.9, 0.6])[None, :, None, None]

    layers = [((0.28, 0.4), 0.2, (0.35, 0.7)), ((0.45, 0.55), 0.1, (0.1, 0.45))]  # far, then near
    for base, amp, shade in layers:
        top = _ridge(g, n, theta, base, amp)  # [n, cols]
        inside = (v[None, :, None] >= top[:, None, :]).float()[:, None]  # [n, 1, rows, cols]
        image = image * (1 - inside) + _uniform(g, n, *shade, 3)[..., None, None] * inside
    ground = _uniform(g, n, 0.05, 0.45, 3)[..., None, None]
    below = (column >= HORIZON).float()
    depth = ((column - HORIZON) / (1 - HORIZON)).clamp(0, 1)
    image = (image * (1 - below) + ground * (0.7 + 0.6 * depth) * below).clamp(0, 1)
    return torch.nn.functional.avg_pool2d(image, SUPERSAMPLE)


def write_panorama_dataset(
    dest: str | os.PathLike,
    count: int = 2000,
    height: int = 32,
    width: int = 128,
    seed: int = 0,
    batch: int = 64,
    progress: bool = True,
) -> PanoramaStats:
    """Render `count` panoramas of height x width into a dataset zip, deterministically from `seed`;
    the zip appears only once complete."""
    if count < 1 or min(height, width) < 2:
        raise ConfigError(
            f"need at least 1 panorama of at least 2 x 2 px, got {count} of {width} x {height}."
        )
    if width < height:  # the width is the whole turn: narrower would see more than 360 degrees up and down
        raise ConfigError(f"a panorama's width is its whole turn, so it cannot be narrower than its height; "
                          f"got {width} x {height}.")  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    bar = tqdm(total=count, unit="img", desc="panoramas", disable=not progress)

    def pngs() -> Iterator[bytes]:
        for start in range(0, count, batch):
            n = min(batch, count - start)
            images = render_panoramas(n, height, width, generator)
            pixels = (images.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
            for i in range(n):
                yield encode_png(pixels[i])
            bar.update(n)

    written = write_image_zip(dest, pngs())
    bar.close()
    return PanoramaStats(dest=Path(dest), count=written, height=height, width=width)
