"""The snapshot score that picks the best snapshot: SWD between G_ema samples and real images."""

from __future__ import annotations

import torch

from cips3d.config import PoseConfig, RenderConfig
from cips3d.metrics.swd import swd
from cips3d.models.generator3d import Generator3D

EVAL_SEED = 777  # fixed latents and cameras: scores of one run differ only because the weights did


@torch.no_grad()
def generated_images(
    G: Generator3D, count: int, img_size: int, pose: PoseConfig, render: RenderConfig, batch: int = 16
) -> torch.Tensor:
    """`count` images [N, 3, S, S] in [-1, 1] from fixed seeds, cameras from the training prior."""
    was_training = G.training
    G.eval()
    generator = torch.Generator().manual_seed(EVAL_SEED)
    images = []
    for start in range(0, count, batch):
        n = min(batch, count - start)
        z = G.sample_latents(n, generator)
        images.append(G(*z, pose=pose, render=render, generator=generator).img.cpu())
    G.train(was_training)
    return torch.cat(images)


def snapshot_score(G_ema: Generator3D, reals: torch.Tensor, pose: PoseConfig, render: RenderConfig) -> float:
    """Mean SWD (x 1e3) between as many G_ema images as `reals` [N, 3, S, S] in [-1, 1]; lower is better."""
    fakes = generated_images(G_ema, reals.shape[0], reals.shape[-1], pose, render)
    return swd(reals, fakes).mean
