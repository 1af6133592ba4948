"""A plain reference path: the official algorithm as written, with the same weights.

One image at a time, in chunks of the official 256^2 rays, FiLM as sin(gamma * (W x + b) + beta) on the
full activation, modulated FC through per-sample weights and a batched product, every operation out of
place, float32. It shares only the rendering math (cameras, rays, sampling, compositing) with the fast
path. Tests check the fast path against it; `benchmarks/bench.py` times it beside the fast path.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch.nn import functional as F

from cips3d import constants as K
from cips3d.config import RenderConfig
from cips3d.models.generator3d import Generator3D
from cips3d.models.inr_decoder import InrDecoder
from cips3d.models.nerf_field import NerfField
from cips3d.nn.film import FiLMSine
from cips3d.nn.modulated import ModulatedLinear
from cips3d.rendering.cameras import Camera
from cips3d.rendering.rays import camera_ray_directions
from cips3d.rendering.volume import RenderDraws, draw_render_randomness, ray_chunks, render_rays

OFFICIAL_CHUNK = 256 * 256  # the official forward_points for inference


def film(layer: FiLMSine, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """x [B, N, in], style [B, D] -> sin(gamma * linear(x) + beta), gamma = 15 f(w) + 30."""
    gamma = (layer.frequency(style) * K.FILM_FREQ_SCALE + K.FILM_FREQ_BIAS).unsqueeze(1)
    beta = layer.phase(style).unsqueeze(1)
    return torch.sin(gamma * layer.linear(x) + beta)


def field(module: NerfField, points: torch.Tensor, styles: Mapping[str, torch.Tensor]):
    """points [B, N, 3] -> (feature [B, N, C], sigma [B, N, 1])."""
    x = points * K.POINT_SCALE
    for layer, name in zip(module.hidden, module.style_names, strict=False):
        x = film(layer, x, styles[name])
    return module.feature(film(module.color, x, styles["nerf_rgb"])), module.sigma(x)


def modulated(layer: ModulatedLinear, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """x [B, N, in] -> x @ demod(W * (1 + s)) per sample."""
    w = layer.weight.unsqueeze(0) * (layer.modulation(style) + 1).unsqueeze(-1)
    w = w / torch.sqrt(w.square().sum(dim=1, keepdim=True) + K.DEMOD_EPS)
    return torch.bmm(x, w)


def decoder(module: InrDecoder, feature: torch.Tensor, styles: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """feature [B, N, C] -> rgb [B, N, 3] (all nine blocks)."""
    x, rgb = feature, 0
    for i, (block, head, (s0, s1)) in enumerate(
        zip(module.blocks, module.to_rgb, module.style_pairs, strict=True)
    ):
        y = F.leaky_relu(modulated(block.mod1, x, styles[s0]), K.LEAKY_SLOPE)
        y = F.leaky_relu(modulated(block.mod2, y, styles[s1]), K.LEAKY_SLOPE)
        x = y + x if block.residual else y
        if i >= module.rgb_from_block:
            rgb = head(x) + rgb
    return torch.tanh(rgb)


@torch.no_grad()
def reference_images(
    G: Generator3D,
    styles: Mapping[str, torch.Tensor],
    camera: Camera,
    render: RenderConfig,
    draws: RenderDraws | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Images [B, 3, H, W] of `styles` at `camera`, one image at a time (the official chunked loop)."""
    b, r, s = camera.batch, render.num_rays, render.num_steps
    draws = draw_render_randomness(
        render, b, generator, G.device, (draws or RenderDraws()).normalized(b, r, s)
    )
    directions = camera_ray_directions(render.img_size, render.fov, G.device).unsqueeze(0)
    cam2world = camera.to(G.device).cam2world()
    images = []
    for i in range(b):
        mine = {name: value[i : i + 1] for name, value in styles.items()}
        per_image = draws.select_batch(i)
        rgb = []
        for index in ray_chunks(1, slice(0, r), OFFICIAL_CHUNK):
            comp = render_rays(
                lambda p, mine=mine: field(G.field, p, mine), directions[:, index], cam2world[i : i + 1],
                render, per_image.rays(index), sort_features=True,  # the official compositing order
            )  # fmt: skip
            rgb.append(decoder(G.decoder, comp.feature, mine))
        images.append(torch.cat(rgb, dim=1))
    rgb = torch.cat(images)
    return rgb.reshape(b, render.img_size, render.img_size, 3).permute(0, 3, 1, 2)
