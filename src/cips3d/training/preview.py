"""Preview grids from fixed latents (spec 4.4): G, G_ema, truncated, tilted and the mirror-symmetry pair.

Rendered deterministically (no jitter), so that two previews differ only because the weights did;
they draw nothing from the training generators, so writing them never changes the run.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from cips3d import constants as K
from cips3d.config import PoseConfig, RenderConfig
from cips3d.io.images import make_grid, to_uint8
from cips3d.models.generator3d import Generator3D
from cips3d.nn.modes import evaluating
from cips3d.rendering.cameras import Camera

PREVIEW_SEED = 2024
TRUNCATION_PSI = 0.7


def preview_latents(G: Generator3D, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed latents of every preview of a run."""
    return G.sample_latents(count, torch.Generator().manual_seed(PREVIEW_SEED))


@torch.no_grad()
def _render(
    G: Generator3D, z, render: RenderConfig, pose: PoseConfig, yaw: float, psi: float = 1.0
) -> np.ndarray:
    """Images with their aux NeRF images below: uint8 [2B, H, W, 3]."""
    camera = Camera.from_angles(yaw, pose.pitch_mean, pose.radius, batch=z[0].shape[0])
    styles = G.truncate(G.mapping(*z), psi)
    out = G.synthesis(styles, camera, render)
    return np.concatenate([to_uint8(out.img), to_uint8(out.aux_img)])


def preview_grids(
    G: Generator3D, G_ema: Generator3D, render: RenderConfig, pose: PoseConfig, count: int = 8
) -> dict[str, np.ndarray]:
    """name -> uint8 grid [H, W, 3]; each grid is a row of images over a row of their aux images.

    `render` and `pose` are the run's (its field of view, ray bounds, samples; its mean camera), rendered
    deterministically; the official tilted and mirror yaws are turned with the run's mean yaw."""
    render = replace(render, deterministic=True)
    z = tuple(t.to(G.device) for t in preview_latents(G, count))
    front, turn = pose.yaw_mean, pose.yaw_mean - K.YAW_MEAN
    with evaluating(G, G_ema):
        grids = {
            "G": _render(G, z, render, pose, front),
            "G_ema": _render(G_ema, z, render, pose, front),
            "G_ema_truncated": _render(G_ema, z, render, pose, front, TRUNCATION_PSI),
            "G_tilted": _render(G, z, render, pose, K.TILT_YAW + turn),
            "G_ema_tilted": _render(G_ema, z, render, pose, K.TILT_YAW + turn),
        }
        left, right = (_render(G_ema, z, render, pose, yaw + turn)[:count] for yaw in K.MIRROR_YAWS)
    grids["G_ema_flip"] = np.stack([left, right], axis=1).reshape(2 * count, *left.shape[1:])
    return {
        name: make_grid(tiles, ncols=count if name != "G_ema_flip" else 2 * min(count, 4))
        for name, tiles in grids.items()
    }
