"""Foveated rendering with the 2D CIPS generator (spec 8.3): render only a scattered set of pixels,
dense around a fixation point and sparse elsewhere, then interpolate them onto the full grid.

Every pixel of CIPS is computed from its own coordinates, so rendering N scattered points costs N
pixels' work however large the image is; the interpolation (piecewise-linear over the points' Delaunay
triangulation, nearest point outside their hull) fills in the rest:

    out = foveated_image(G, w, size=256, count=8192, fixation=(0.3, -0.2))
    out.image     # [B, 3, 256, 256], sharp near the fixation, smoother away from it
    out.points    # [count, 2] the (x, y) rendered, out.colours their [B, 3, count] colours
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.interpolate import griddata
from scipy.spatial import QhullError

from cips3d.config import is_whole_number
from cips3d.errors import ConfigError
from cips3d.models.coordinates import foveated_points, plane_grid
from cips3d.models.generator2d import Generator2D


@dataclass(frozen=True)
class Foveated:
    image: torch.Tensor
    """[B, 3, size, size] the interpolated image (on the CPU)."""
    points: torch.Tensor
    """[count, 2] the rendered coordinates (x, y) in [-1, 1]^2."""
    colours: torch.Tensor
    """[B, 3, count] the generator's colours at `points`."""


MAX_FOVEATED_POINTS = 100_000
"""The most points a foveated image interpolates between: the triangulation (scipy's Qhull) grows
faster than the points (100,000: about 6 s on a 2-core CPU; 300,000: 47 s) and ignores Ctrl-C."""


@torch.no_grad()
def foveated_image(
    G: Generator2D,
    w: torch.Tensor,
    size: int,
    count: int,
    fixation: tuple[float, float] = (0.0, 0.0),
    sharpness: float = 2.0,
    generator: torch.Generator | None = None,
) -> Foveated:
    """Render `count` points drawn by `foveated_points` (from `generator`) for styles w [B, D] and
    interpolate them onto the size x size grid of the frame [-1, 1]^2."""
    if not (is_whole_number(count) and 3 <= count <= MAX_FOVEATED_POINTS):
        raise ConfigError(f"a foveated image interpolates between 3 to {MAX_FOVEATED_POINTS:,} points, got "
                          f"{count!r} (scipy's triangulation of 300,000 took 47 s and cannot be "
                          "interrupted).")  # fmt: skip
    if not isinstance(G, Generator2D):  # a 3D model: an AttributeError about grid_width
        raise ConfigError(
            f"foveated images are rendered by a 2D CIPS model (Generator2D), got {type(G).__name__}."
        )
    if G.config.grid_width != G.config.size:  # a panorama's 4:1 frame was squashed into the square
        raise ConfigError("foveated images are square frames; this model's images are not square.")
    points = foveated_points(count, fixation, sharpness, generator)  # [1, count, 1, 2]
    colours = G.synthesis(w, points.to(G.device))[..., 0].cpu()  # [B, 3, count]: one grid for all
    flat = points[0, :, 0]
    return Foveated(interpolate_to_grid(flat, colours, size), flat, colours)


def interpolate_to_grid(points: torch.Tensor, values: torch.Tensor, size: int) -> torch.Tensor:
    """points [N, 2] (x, y), values [B, C, N] -> [B, C, size, size] on `plane_grid(size, size)`:
    linear over the points' triangulation, the nearest point's value outside their convex hull (and
    everywhere when the points make no triangle)."""
    b, c, n = values.shape
    xy = points.double().numpy()
    data = values.permute(2, 0, 1).reshape(n, b * c).double().numpy()
    targets = plane_grid(size, size)[0].reshape(-1, 2).double().numpy()
    try:
        linear = griddata(xy, data, targets, method="linear")
    except QhullError:  # fewer than 3 points, or all on one line: no triangles to interpolate in
        return _to_image(griddata(xy, data, targets, method="nearest"), values.dtype, size, b, c)
    outside = np.isnan(linear).any(axis=1)
    if outside.any():
        linear[outside] = griddata(xy, data, targets[outside], method="nearest")
    return _to_image(linear, values.dtype, size, b, c)


def _to_image(flat: np.ndarray, dtype: torch.dtype, size: int, b: int, c: int) -> torch.Tensor:
    """[size * size, B * C], row-major from the top-left -> [B, C, size, size]."""
    return torch.from_numpy(flat).to(dtype).reshape(size, size, b, c).permute(2, 3, 0, 1).contiguous()
