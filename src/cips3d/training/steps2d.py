"""One training iteration of 2D CIPS (spec 8.2): StyleGAN2's losses on multi-scale patches.

    patches, coords = multiscale_patches(reals, patch=64, generator=g)   # one scale per iteration
    d_step_2d(G, D, opt_d, patches, coords, settings, g, iteration)     # + lazy R1 every 16th
    g_step_2d(G, D, opt_g, coords, settings, g)
    ema_update(G_ema, G, settings.ema_decay)

Non-saturating logistic losses; R1 (gamma 10) on the reals only every `r1_every` iterations, scaled by
that interval (StyleGAN2's lazy regularisation), with Adam's learning rate and betas adjusted for it;
the generator renders exactly the patch's coordinates (every pixel is independent), with fresh
per-pixel noise; the discriminator reads the image, or the image and its coordinate maps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from cips3d.errors import ConfigError
from cips3d.models.coordinates import plane_grid
from cips3d.models.discriminator2d import Discriminator2D
from cips3d.models.generator2d import Generator2D
from cips3d.nn.modes import frozen_weights
from cips3d.training.losses import d_logistic_loss, g_nonsaturating_loss, r1_penalty
from cips3d.training.steps import GradientAverage, clip_or_skip, no_average

G_REG_EVERY = 4  # StyleGAN2's path-length interval: CIPS keeps G's lazy ratio 4/5 though it computes none


@dataclass(frozen=True)
class Cips2DTrainSettings:
    """CIPS's train.py defaults (spec 8.2)."""

    lr: float = 0.002
    r1_gamma: float = 10.0
    r1_every: int = 16
    ema_half_life_images: float = 10_000.0
    """G_ema's half-life in images (StyleGAN2's ema_kimg); decay per iteration 0.5^(batch / this)."""
    ema_batch: int = 32
    """The batch the official decay is computed for (8 GPUs x 4): 0.5^(32 / 10,000) = 0.99778."""

    def __post_init__(self) -> None:
        if not (self.lr > 0 and self.r1_gamma >= 0 and self.r1_every >= 1 and self.ema_half_life_images > 0):
            raise ConfigError(
                "2D training needs lr > 0, r1_gamma >= 0, r1_every >= 1 and a positive EMA half-life."
            )

    @property
    def ema_decay(self) -> float:
        return 0.5 ** (self.ema_batch / self.ema_half_life_images)

    def optimizers(self, G: nn.Module, D: nn.Module) -> tuple[torch.optim.Adam, torch.optim.Adam]:
        """Adam for G and D with StyleGAN2's lazy-regularisation ratios: lr x ratio, betas (0, 0.99^ratio),
        ratio = every / (every + 1) (G 4/5, D r1_every / (r1_every + 1))."""

        def adam(params, every: int) -> torch.optim.Adam:
            ratio = every / (every + 1)
            return torch.optim.Adam(params, lr=self.lr * ratio, betas=(0.0, 0.99**ratio))

        return adam(G.parameters(), G_REG_EVERY), adam(D.parameters(), self.r1_every)


def finite_step(opt: torch.optim.Optimizer, params, loss: torch.Tensor) -> bool:
    """`opt.step()` unless the loss or a gradient is not finite: then the gradients are dropped and
    nothing moves (one NaN step made Adam's moments NaN, and every weight after it). True if it stepped.
    Gradients are not clipped (CIPS does not clip)."""
    ok, _ = clip_or_skip(params, math.inf, loss)
    if ok:
        opt.step()
    return ok


def patch_scales(height: int, width: int, patch: int) -> int:
    """How many times the patch stride can double: k with min(height, width) = patch x 2^k. Raises
    ConfigError naming the sizes when the shorter side is not the patch side times a power of two."""
    short = min(height, width)
    ratio, remainder = divmod(short, patch) if patch >= 1 else (0, 1)
    if remainder or ratio < 1 or ratio & (ratio - 1):
        raise ConfigError(
            f"the patch side must be the images' shorter side ({short} px of {width}x{height}) over a "
            f"power of two, not {patch}."
        )
    return ratio.bit_length() - 1


def multiscale_patches(
    reals: torch.Tensor,
    patch: int,
    generator: torch.Generator | None = None,
    grid: torch.Tensor | None = None,
    wrap: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """reals [B, C, H, W] -> (patches [B, C, P, P], coords [B, P, P, 2]).

    One scale k for the whole batch, uniform over 0 .. log2(min(H, W) / P): each patch takes every
    2^k-th pixel of its image from a random offset (drawn per image), and `coords` are those pixels'
    entries of `grid` [H, W, 2] (the generator's training grid; default `plane_grid(H, W)`), for the
    generator to render exactly them. With `wrap` (panoramas, whose left and right edges meet), the
    columns continue across the seam: a patch may start at any column. P = H = W gives the whole images."""
    b, _, height, width = reals.shape
    scales = patch_scales(height, width, patch)
    grid = plane_grid(height, width)[0] if grid is None else grid
    if grid.shape != (height, width, 2):
        raise ConfigError(
            f"the coordinate grid is {list(grid.shape)}, not [{height}, {width}, 2] as the images."
        )
    stride = 2 ** int(torch.randint(scales + 1, (1,), generator=generator))
    span = (patch - 1) * stride + 1
    highs = (height - span + 1, width if wrap else width - span + 1)
    offsets = torch.stack([torch.randint(high, (b,), generator=generator) for high in highs], 1).tolist()
    steps = torch.arange(patch) * stride
    patches, coords = [], []
    for image, (top, left) in zip(reals, offsets, strict=True):
        rows, cols = top + steps, (left + steps) % width
        patches.append(image[:, rows][:, :, cols])
        coords.append(grid[rows][:, cols])
    return torch.stack(patches), torch.stack(coords).to(reals.device)


def discriminator_input(D: Discriminator2D, images: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """The image, with its (x, y) coordinate maps appended when D reads 5 channels."""
    if D.config.input_channels == 3:
        return images
    return torch.cat([images, coords.permute(0, 3, 1, 2).to(images.dtype)], dim=1)


def _fakes(G: Generator2D, coords: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    z = G.sample_latents(coords.shape[0], generator)
    return G(z, coords, noise="random", generator=generator)


def d_step_2d(
    G: Generator2D,
    D: Discriminator2D,
    opt: torch.optim.Optimizer,
    reals: torch.Tensor,
    coords: torch.Tensor,
    settings: Cips2DTrainSettings,
    generator: torch.Generator | None,
    iteration: int,
    average: GradientAverage = no_average,
) -> dict[str, float]:
    """One D update on reals [B, 3, P, P] rendered at coords [B, P, P, 2]; on every `r1_every`-th
    iteration (counting from 0) a second update with r1_every x the R1 penalty on the reals.
    `average` (data-parallel runs) averages each backward's gradients and loss over the processes."""
    with torch.no_grad():
        fakes = _fakes(G, coords, generator)
    loss = d_logistic_loss(D(discriminator_input(D, reals, coords)), D(discriminator_input(D, fakes, coords)))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    loss = average(D.parameters(), loss.detach())
    skipped = not finite_step(opt, D.parameters(), loss)
    stats = {"d_loss": float(loss)}
    if settings.r1_gamma > 0 and iteration % settings.r1_every == 0:
        real = reals.detach().requires_grad_(True)
        penalty = r1_penalty(D(discriminator_input(D, real, coords)), real, settings.r1_gamma).mean()
        opt.zero_grad(set_to_none=True)
        (penalty * settings.r1_every).backward()
        penalty = average(D.parameters(), penalty.detach())
        stats["r1"] = float(penalty)
        skipped |= not finite_step(opt, D.parameters(), penalty)
    return stats | {"d_skipped": float(skipped)}


def g_step_2d(
    G: Generator2D,
    D: Discriminator2D,
    opt: torch.optim.Optimizer,
    coords: torch.Tensor,
    settings: Cips2DTrainSettings,
    generator: torch.Generator | None,
    average: GradientAverage = no_average,
) -> dict[str, float]:
    """One G update: non-saturating loss of fakes rendered at coords [B, P, P, 2] (D is frozen for it:
    no gradients are computed for, or left on, its parameters); `average` as in `d_step_2d`."""
    with frozen_weights(D):
        fakes = _fakes(G, coords, generator)
        loss = g_nonsaturating_loss(D(discriminator_input(D, fakes, coords)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        loss = average(G.parameters(), loss.detach())
        skipped = not finite_step(opt, G.parameters(), loss)
    return {"g_loss": float(loss), "g_skipped": float(skipped)}
