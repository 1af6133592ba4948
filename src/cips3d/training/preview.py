"""Preview grids from fixed latents (spec 4.4): G, G_ema, truncated, tilted and the mirror-symmetry pair.

Rendered deterministically (no jitter), so that two previews differ only because the weights did;
they draw nothing from the training generators, so writing them never changes the run.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cips3d import constants as K
from cips3d.config import RenderConfig
from cips3d.io.images import make_grid, to_uint8
from cips3d.models.generator3d import Generator3D
from cips3d.nn.modes import evaluating
from cips3d.rendering.cameras import Camera

PREVIEW_SEED = 2024
TILT_YAW = math.pi / 2 + 0.5  # "tilted" previews of the official trainer
FLIP_YAWS = (1.44, 1.70)  # the mirror-symmetry pair: details must not flip between these views
TRUNCATION_PSI = 0.7


def preview_latents(G: Generator3D, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed latents of every preview of a run."""
    return G.sample_latents(count, torch.Generator().manual_seed(PREVIEW_SEED))


@torch.no_grad()
def _render(G: Generator3D, z, render: RenderConfig, yaw: float, psi: float = 1.0) -> np.ndarray:
    """Images with their aux NeRF images below: uint8 [2B, H, W, 3]."""
    camera = Camera.from_angles(yaw, K.PITCH_MEAN, batch=z[0].shape[0])
    styles = G.truncate(G.mapping(*z), psi)
    out = G.synthesis(styles, camera, render)
    return np.concatenate([to_uint8(out.img), to_uint8(out.aux_img)])


def preview_grids(G: Generator3D, G_ema: Generator3D, img_size: int, count: int = 8) -> dict[str, np.ndarray]:
    """name -> uint8 grid [H, W, 3]; each grid is a row of images over a row of their aux images."""
    render = RenderConfig(img_size=img_size, deterministic=True)
    z = tuple(t.to(G.device) for t in preview_latents(G, count))
    front = K.YAW_MEAN
    with evaluating(G, G_ema):
        grids = {
            "G": _render(G, z, render, front),
            "G_ema": _render(G_ema, z, render, front),
            "G_ema_truncated": _render(G_ema, z, render, front, TRUNCATION_PSI),
            "G_tilted": _render(G, z, render, TILT_YAW),
            "G_ema_tilted": _render(G_ema, z, render, TILT_YAW),
        }
        left, right = (_render(G_ema, z, render, yaw)[:count] for yaw in FLIP_YAWS)
    grids["G_ema_flip"] = np.stack([left, right], axis=1).reshape(2 * count, *left.shape[1:])
    return {
        name: make_grid(tiles, ncols=count if name != "G_ema_flip" else 2 * min(count, 4))
        for name, tiles in grids.items()
    }
