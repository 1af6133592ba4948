"""GAN inversion for the 2D CIPS generator: the style w under which it renders a given image.

With the style found, the photo becomes a CIPS image like any other: every pixel is computed from its
own coordinates, so it can be rendered denser than it was given (super-resolution) or beyond its
frame (the model's continuation of it), or, for a panorama model, round the cylinder.

The schedule is the 3D inversion's (`cips3d.inference.inversion`, after the StyleGAN2 projector): w
starts at the mean of the mapping's outputs, Adam lowers the pixel distance at three scales, the
learning rate warms up and ramps down, and fading Gaussian noise keeps the search from settling early.
`per_layer=True` fits one w per modulated layer (W+: closer fits, further from the model's samples).

    result = invert2d(G, target, Inversion2DConfig(steps=300))
    larger = G.synthesis(result.w, plane_grid(128, 128, extent=1.25))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from cips3d.config import given_or_default, plain_fields, whole_count
from cips3d.errors import CheckpointError, ConfigError
from cips3d.inference.inversion import (
    MAX_LR,
    NOISE_FACTOR,
    SPREAD_SAMPLES,
    check_target_range,
    descend,
    holds_inverted_styles,
    learning_rate_scale,
    noise_scale,
    pyramid_loss,
)
from cips3d.models.generator2d import Generator2D
from cips3d.models.inputs import require_tensor
from cips3d.nn.modes import frozen_weights
from cips3d.seeding import check_seed, seeded_generator


@dataclass(frozen=True)
class Inversion2DConfig:
    """How to invert: steps, rate, W or W+, noise."""

    steps: int = 300
    lr: float = 0.05
    """Peak Adam step of w."""
    per_layer: bool = False
    """One w per modulated layer (W+) instead of one for all."""
    noise: float = NOISE_FACTOR
    """Initial strength of the noise added to w, as a fraction of W's spread (0: none)."""
    seed: int = 0
    """Seed of that noise."""

    def __post_init__(self) -> None:
        plain_fields(self)
        whole_count(self.steps, "steps (--steps)")
        check_seed(self.seed, "seed (--seed)")
        if not self.lr > 0:
            raise ConfigError(f"the learning rate (--lr) must be positive, got {self.lr}.")
        if self.lr > MAX_LR:
            raise ConfigError(f"the learning rate (--lr) is at most {MAX_LR:g} (Adam moves w about that much "
                              f"per step, far out of its range), got {self.lr:g}.")  # fmt: skip
        if not self.noise >= 0:
            raise ConfigError(f"the noise on w must be >= 0, got {self.noise}.")


@dataclass
class Inversion2D:
    w: torch.Tensor
    """[1, D], or [1, num_styles, D] with per_layer."""
    losses: list[float] = field(default_factory=list)
    image: torch.Tensor | None = None
    """[1, 3, H, W] the final render on the training grid, in the model's range (about [-1, 1])."""


@torch.no_grad()
def w_statistics(G: Generator2D, samples: int = SPREAD_SAMPLES, seed: int = 0) -> tuple[torch.Tensor, float]:
    """The mean of mapped latents [D] and their RMS distance from it (W's spread)."""
    w = G.mapping(G.sample_latents(samples, seeded_generator(seed)))
    mean = w.mean(0)
    return mean, float((w - mean).square().sum(1).mean().sqrt())


def invert2d(
    G: Generator2D,
    target: torch.Tensor,
    config: Inversion2DConfig = Inversion2DConfig(),
    on_step: Callable[[int, float], None] | None = None,
) -> Inversion2D:
    """w under which `G` renders `target` [1, 3, size, grid_width] in [-1, 1] on its training grid."""
    config = given_or_default(config, Inversion2DConfig, "config")
    require_tensor(target, "the target image")
    shape = (1, 3, G.config.size, G.config.grid_width)
    if tuple(target.shape) != shape:
        raise ConfigError(f"the target must be {list(shape)} (the training grid), got {list(target.shape)}.")
    check_target_range(target)
    target = target.to(G.device)
    mean, spread = w_statistics(G)
    start = mean[None, None].expand(1, G.num_styles, -1) if config.per_layer else mean[None]
    w = start.clone().requires_grad_()
    optimizer = torch.optim.Adam([w], lr=config.lr, betas=(0.9, 0.999))
    noise_generator = seeded_generator(config.seed)
    losses: list[float] = []
    with frozen_weights(G), torch.enable_grad():  # gradients flow to w only
        for step in range(config.steps):
            t = step / config.steps
            optimizer.param_groups[0]["lr"] = config.lr * learning_rate_scale(t)
            noise = torch.randn(w.shape, generator=noise_generator).to(w.device)
            strength = config.noise * noise_scale(t) * spread / math.sqrt(w.shape[-1])
            descend(optimizer, pyramid_loss(G.synthesis(w + noise * strength), target), losses, on_step)
    fitted = w.detach().clone()
    with torch.no_grad():
        image = G.synthesis(fitted)
    return Inversion2D(fitted, losses, image)


def fitted_w_model(path: str | Path) -> str | None:
    """The model a `w.safetensors` was fitted with, as `cips3d invert2d` recorded it (None if unsaid)."""
    try:
        with safe_open(str(path), "pt") as f:
            return (f.metadata() or {}).get("model")
    except Exception:  # noqa: BLE001 - load_fitted_w has said what is wrong with the file
        return None


def load_fitted_w(path: str | Path, G: Generator2D) -> torch.Tensor:
    """The style `cips3d invert2d` wrote (`w.safetensors`: [1, D], or [1, num_styles, D]), checked
    against `G`, on its device."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no fitted style at {path} (cips3d invert2d writes w.safetensors).")
    try:
        w = load_file(str(path)).get("w")
    except Exception as err:  # safetensors raises its own error type for damaged files
        raise CheckpointError(f"{path} is not a readable safetensors file ({err}).") from err
    d, layers = G.config.style_dim, G.num_styles
    if w is None and holds_inverted_styles(path):
        raise CheckpointError(f"{path} holds styles fitted to a 3D model (cips3d invert's); a 2D model takes "
                              "the w.safetensors that cips3d invert2d writes.")  # fmt: skip
    if w is None or tuple(w.shape) not in ((1, d), (1, layers, d)):
        got = "no 'w'" if w is None else f"'w' of shape {list(w.shape)}"
        shapes = f"[1, {d}] or [1, {layers}, {d}]"
        raise CheckpointError(f"{path} holds {got}, not a style of this model ({shapes}).")
    dtype = G.dtype  # said now: the viewer started, then refused every frame
    if w.dtype != dtype or not torch.isfinite(w).all():
        why = (
            f"its dtype is {w.dtype}, not {dtype}" if w.dtype != dtype else "it holds NaN or infinite values"
        )
        raise CheckpointError(f"{path} holds no usable style of this model: {why}.")
    return w.to(G.device)
