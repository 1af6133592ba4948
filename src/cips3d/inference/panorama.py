"""Looking around a panorama of a 2D CIPS model with cylinder coordinates: the frames of a camera that
turns once on the spot.

Each frame is rendered from its own coordinates (a window of `cylinder_grid` that starts a little
further round), not cut from a stored panorama, so the view moves by fractions of a pixel as smoothly
as by whole ones, at any height, and the turn ends where it began:

    for frame in pan_frames(G, w, frames=120, view_degrees=90):
        ...  # uint8 [H, window, 3]
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from cips3d.config import finite_number, whole_count
from cips3d.errors import ConfigError
from cips3d.io.images import to_uint8
from cips3d.models.coordinates import cylinder_grid
from cips3d.models.generator2d import Generator2D


@torch.no_grad()
def pan_frames(
    G: Generator2D, w: torch.Tensor, frames: int, view_degrees: float = 90.0, height: int | None = None
) -> Iterator[np.ndarray]:
    """uint8 frames [H, window, 3] of w [1, D] seen through a `view_degrees` window that turns once,
    starting at x = -1 (the panorama's first column), in `frames` equal steps."""
    if not G.config.panorama:
        raise ConfigError("only a model with cylinder coordinates (a panorama model) can be looked around.")
    frames = whole_count(frames, "frames")
    if not 0 < finite_number(view_degrees, "view_degrees") <= 360:
        raise ConfigError(f"a pan's view must be in (0, 360] degrees, got {view_degrees}.")
    height = G.config.size if height is None else whole_count(height, "height")
    window = G.frame_width(height, view_degrees / 360)
    for k in range(frames):
        grid = cylinder_grid(height, window, 1, turns=view_degrees / 360, start=-1 + 2 * k / frames)
        yield to_uint8(G.synthesis(w, grid.to(G.device)).clamp(-1, 1))[0]
