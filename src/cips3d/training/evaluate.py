"""The snapshot score that picks the best snapshot: SWD between G_ema samples and real images."""

from __future__ import annotations

import torch

from cips3d.config import PoseConfig, RenderConfig
from cips3d.metrics.evaluate import generated_images
from cips3d.metrics.swd import swd
from cips3d.models.generator3d import Generator3D


def snapshot_score(G_ema: Generator3D, reals: torch.Tensor, pose: PoseConfig, render: RenderConfig) -> float:
    """Mean SWD (x 1e3) between as many G_ema images as `reals` [N, 3, S, S] in [-1, 1]; lower is better."""
    fakes = generated_images(G_ema, reals.shape[0], render, pose).float() / 127.5 - 1
    return swd(reals, fakes).mean
