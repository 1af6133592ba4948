"""GAN inversion: the styles and the camera under which a generator renders a given image.

The styles start at the generator's truncation mean (the centre of its W space) and the camera at the
given angles (frontal by default); Adam then lowers the pixel distance between the render and the
target at three scales (full, 1/2 and 1/4 resolution, so coarse shape and colour lead and detail
follows). The schedule follows the StyleGAN2 projector: the learning rate warms up over the first 5%
of the steps and ramps down along a cosine over the last 25%, and Gaussian noise of 5% of W's spread,
fading quadratically to zero over the first 75% of the steps, is added to the styles so the search does
not settle in the first nearby minimum. Rendering is deterministic (no sampling jitter), so the loss
is a smooth function of what is optimised.

`per_layer=True` gives every layer its own style vector (W+: closer fits, less like the model's own
samples); by default there is one vector for the NeRF and one for the INR, as the mapping networks
produce.

    result = invert(G, target, InversionConfig(steps=200, size=64))
    views = G.synthesis(result.styles, Camera.from_angles(result.yaw + 0.3, result.pitch), render)
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.nn import functional as F

from cips3d import constants as K
from cips3d.config import RenderConfig, given_or_default, plain_fields, whole_count
from cips3d.errors import CheckpointError, ConfigError, error_gist, first_sentence
from cips3d.fast import uncompiled
from cips3d.inference.video import compose_frame
from cips3d.io.files import atomic_write
from cips3d.io.images import array_kind, is_uint8_array, to_uint8
from cips3d.models.generator3d import Generator3D
from cips3d.models.inputs import require_tensor
from cips3d.nn.modes import frozen_weights
from cips3d.outputs import GeneratorOutput, Styles
from cips3d.rendering.cameras import ANGLE_RULE, PITCH_RULE, Camera, clamp_pitch, is_camera_angle, is_pitch
from cips3d.seeding import check_seed, seeded_generator

# The StyleGAN2-ADA projector's schedule (Karras et al. 2020, `projector.py` defaults).
LR_RAMPUP = 0.05
LR_RAMPDOWN = 0.25
NOISE_FACTOR = 0.05
NOISE_RAMP = 0.75
SPREAD_SAMPLES = 2000
"""Latents whose mapped styles measure W's spread (about its truncation mean)."""
PYRAMID = (1, 2, 4)
"""Downsampling factors of the loss's scales."""
FORMAT = "cips3d.inverted-styles"
SEARCH_SPREAD = 2.0
"""The camera search covers the FFHQ pose prior's mean +- this many standard deviations."""


SEARCH_BATCH = 16  # candidate cameras rendered together by the camera search
MAX_CAMERA_LR = 1.0  # radians per Adam step: beyond it the camera jumps rather than fits
MAX_LR = 10.0  # Adam moves each style value about lr per step, and W spreads about 1 around its centre:
# steps of 10 already throw the styles far out of W (--lr 1e38 overflowed Adam's float state, a traceback)


@dataclass(frozen=True)
class InversionConfig:
    """How to invert: steps, rates, which parameters move."""

    steps: int = 200
    size: int = 64
    """Side of the renders compared with the target (the target is resized to it)."""
    lr: float = 0.05
    """Peak Adam step of the styles."""
    camera_lr: float = 0.01
    """Peak Adam step of the camera angles (radians)."""
    fit_camera: bool = True
    """Optimise yaw and pitch too (else they stay at their initial values)."""
    yaw: float = math.pi / 2
    """Initial yaw (radians; pi/2 is frontal)."""
    pitch: float = math.pi / 2
    """Initial pitch (radians; pi/2 is level)."""
    camera_search: int = 7
    """Before optimising, try this many yaws (and about half as many pitches) across the pose prior,
    rendering the mean styles, and start from the closest (the initial angles compete too); 0: start
    from `yaw` / `pitch`. Gradient descent alone only finds cameras near where it starts."""
    per_layer: bool = False
    """One style vector per layer (W+) instead of one per network."""
    perceptual: float = 0.0
    """Weight of the perceptual distance (`cips3d.metrics.perceptual`) added to the pixel loss; it
    needs the `perceptual` argument of `invert`."""
    noise: float = NOISE_FACTOR
    """Initial strength of the style noise, as a fraction of W's spread (0: none)."""
    seed: int = 0
    """Seed of the style noise."""

    def __post_init__(self) -> None:
        plain_fields(self)
        if not (is_camera_angle(self.yaw) and is_camera_angle(self.pitch)):
            raise ConfigError(f"yaw and pitch must be {ANGLE_RULE}.")
        if not is_pitch(self.pitch):
            raise ConfigError(f"pitch must run {PITCH_RULE}, got {self.pitch}.")
        whole_count(self.steps, "steps (--steps)")
        check_seed(self.seed, "seed (--seed)")
        # Named as the field and its flag: the API and `cips3d invert` share these checks.
        whole_count(self.camera_search, "camera_search (--camera-search)", minimum=0)
        rules = {
            "lr (--lr) must be positive": self.lr > 0,
            "camera_lr (--camera-lr) must be >= 0": self.camera_lr >= 0,
            "noise (--noise) must be >= 0": self.noise >= 0,
            "perceptual (--perceptual) must be >= 0": self.perceptual >= 0,
        }
        for name in ("lr", "noise", "perceptual"):  # infinity passed, then blamed the styles at fit time
            rules[f"{name} (--{name}) must be finite"] = math.isfinite(getattr(self, name))
        wrong = [rule for rule, holds in rules.items() if not holds]  # NaN fails every rule
        if wrong:
            raise ConfigError(f"{wrong[0]}.")
        if self.lr > MAX_LR:
            raise ConfigError(f"lr (--lr) is at most {MAX_LR:g} (Adam moves each style about that much per "
                              f"step, far out of the styles' range), got {self.lr:g}.")  # fmt: skip
        if self.camera_lr > MAX_CAMERA_LR:
            raise ConfigError(
                f"camera_lr (--camera-lr) is a step in radians and at most {MAX_CAMERA_LR:g} (larger steps "
                f"jump around the object instead of fitting its camera), got {self.camera_lr:g}."
            )
        RenderConfig(img_size=self.size)  # an impossible size fails here, with its own message


@dataclass
class Inversion:
    """The result: styles [1, D] by layer name, camera angles, and how the loss went."""

    styles: Styles
    yaw: float
    pitch: float
    fov: float
    losses: list[float] = field(default_factory=list)
    output: GeneratorOutput | None = None
    """The final render (image, aux image, depth) under the fitted styles and camera; None when read
    back from a file."""
    model: str | None = None
    """The model the styles were fitted with, as `cips3d invert` recorded it (read back from a file)."""

    @property
    def image(self) -> torch.Tensor | None:
        """[1, 3, S, S] the final render in [-1, 1]."""
        return None if self.output is None else self.output.img

    def camera(self, device: torch.device | str = "cpu") -> Camera:
        return Camera.from_angles(self.yaw, self.pitch).to(device)


def fit_panels(target: torch.Tensor, output: GeneratorOutput, render: RenderConfig) -> np.ndarray:
    """uint8 [S, 4 S, 3]: the target [1, 3, S, S] beside the fit, its aux NeRF image and its depth."""
    panels = compose_frame(output, render, ("image", "aux", "depth"))
    return np.concatenate([to_uint8(target[0]), panels], axis=1)


def descend(
    optimizer: torch.optim.Optimizer, loss: torch.Tensor, losses: list[float], on_step: Callable | None
) -> None:
    """One optimiser step on `loss`, recorded in `losses` and reported to `on_step(step, loss)`. A fit
    that diverges (a non-finite loss or parameter) stops with a `ConfigError` before anything is saved."""
    value = float(loss.detach())
    if not math.isfinite(value):
        raise ConfigError(
            f"the fit diverged: its loss was {value} at step {len(losses)}; lower the learning rate."
        )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):  # one device read a step
        raise ConfigError(
            f"the fit diverged: its values overflowed at step {len(losses)}; lower the learning rate."
        )
    losses.append(value)
    if on_step is not None:
        on_step(len(losses) - 1, losses[-1])


def learning_rate_scale(t: float) -> float:
    """Fraction of the peak learning rate at progress t in [0, 1] (warm-up, then cosine ramp-down)."""
    down = 0.5 - 0.5 * math.cos(min(1.0, (1.0 - t) / LR_RAMPDOWN) * math.pi)
    return down * min(1.0, t / LR_RAMPUP)


def noise_scale(t: float) -> float:
    """Fraction of the initial style noise at progress t: quadratic fade to 0 at NOISE_RAMP."""
    return max(0.0, 1.0 - t / NOISE_RAMP) ** 2


def pyramid_loss(image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error at full, 1/2 and 1/4 resolution (scales smaller than 2 px are left out)."""
    losses = []
    for factor in PYRAMID:
        if image.shape[-1] // factor < 2:
            break
        a = F.avg_pool2d(image, factor) if factor > 1 else image
        b = F.avg_pool2d(target, factor) if factor > 1 else target
        losses.append(F.mse_loss(a, b))
    return torch.stack(losses).mean()


@torch.no_grad()
def style_spread(G: Generator3D, samples: int = SPREAD_SAMPLES, seed: int = 0) -> dict[str, float]:
    """RMS distance of mapped styles from the truncation mean, per network ('nerf', 'inr')."""
    z_nerf, z_inr = G.sample_latents(samples, seeded_generator(seed))
    w_nerf, w_inr = G.nerf_mapping(z_nerf), G.inr_mapping(z_inr)
    spread = {
        "nerf": (w_nerf - G.truncation_mean_nerf).square().sum(1).mean().sqrt(),
        "inr": (w_inr - G.truncation_mean_inr).square().sum(1).mean().sqrt(),
    }
    return {k: float(v) for k, v in spread.items()}


def _fit_dtype(G: Generator3D) -> torch.dtype:
    """The dtype the fitted variables live in: float32 for a half-precision model (Adam's eps of 1e-8
    is 0 in float16, and its first step divided by it), else the model's own."""
    return torch.float32 if G.dtype in (torch.float16, torch.bfloat16) else G.dtype


def _initial_styles(G: Generator3D, per_layer: bool) -> dict[str, torch.Tensor]:
    """The variables: one [1, D] leaf per network, or per layer; all at the truncation mean."""
    dtype = _fit_dtype(G)
    if per_layer:
        return {name: w.to(dtype, copy=True).requires_grad_() for name, w in G.truncation_centre().items()}
    return {
        "nerf": G.truncation_mean_nerf[None].to(dtype, copy=True).requires_grad_(),
        "inr": G.truncation_mean_inr[None].to(dtype, copy=True).requires_grad_(),
    }


def _expand(G: Generator3D, variables: dict[str, torch.Tensor], per_layer: bool) -> Styles:
    """Variables -> styles by layer name, in the model's dtype."""
    variables = {name: v.to(G.dtype) for name, v in variables.items()}
    if per_layer:
        return variables
    return {n: variables["nerf"] for n in G.nerf_style_names} | {
        n: variables["inr"] for n in G.inr_style_names
    }


def invert(
    G: Generator3D,
    target: torch.Tensor,
    config: InversionConfig = InversionConfig(),
    render: RenderConfig | None = None,
    on_step: Callable[[int, float], None] | None = None,
    perceptual: torch.nn.Module | None = None,
) -> Inversion:
    """Styles (and camera) under which `G` renders `target` [1, 3, S, S] in [-1, 1] (S = config.size).

    `render` sets the field of view and ray bounds (its size and sampling are replaced: config.size,
    deterministic); `on_step(step, loss)` is called after every step (progress bars); `perceptual`
    (a `PerceptualDistance`, needed when config.perceptual > 0) adds that distance to the loss.
    """
    config = given_or_default(config, InversionConfig, "config")
    require_tensor(target, "the target image")
    if config.perceptual > 0 and perceptual is None:
        raise ConfigError(
            "a perceptual weight needs the perceptual distance (metrics.perceptual.load_perceptual)."
        )
    if target.dim() != 4 or target.shape[:2] != (1, 3) or target.shape[-2:] != (config.size, config.size):
        raise ConfigError(
            f"the target must be [1, 3, {config.size}, {config.size}], got {list(target.shape)}."
        )
    check_target_range(target)
    device = G.device
    target = target.to(device)
    render = replace(
        given_or_default(render, RenderConfig, "render"),
        img_size=config.size,
        deterministic=True,
        grad_rays=None,
    )
    spread = style_spread(G)
    variables = _initial_styles(G, config.per_layer)
    start = (config.yaw, config.pitch)
    if config.fit_camera and config.camera_search:
        start = search_camera(G, target, _expand(G, variables, config.per_layer), render, config)
    angles = torch.tensor(start, device=device, requires_grad=config.fit_camera)
    groups = [{"params": list(variables.values()), "lr": config.lr}]
    if config.fit_camera:
        groups.append({"params": [angles], "lr": config.camera_lr})
    optimizer = torch.optim.Adam(groups, betas=(0.9, 0.999))
    peaks = [g["lr"] for g in optimizer.param_groups]
    noise_generator = seeded_generator(config.seed)
    losses: list[float] = []
    # Gradients flow to the styles and the camera only; enable_grad also inside torch.no_grad().
    with frozen_weights(G), torch.enable_grad():
        for step in range(config.steps):
            t = step / config.steps
            for group, peak in zip(optimizer.param_groups, peaks, strict=True):
                group["lr"] = peak * learning_rate_scale(t)
            strength = config.noise * noise_scale(t)
            styles = _noisy(_expand(G, variables, config.per_layer), spread, strength, noise_generator, G)
            out = G.synthesis(styles, _camera(angles), render)
            loss = pyramid_loss(out.img, target)
            if config.perceptual > 0:
                loss = loss + config.perceptual * perceptual(out.img, target).mean()
            descend(optimizer, loss, losses, on_step)
            if config.fit_camera:  # the renderer clamps a pitch past a pole: keep the fit where it renders
                with torch.no_grad():
                    angles[1] = clamp_pitch(angles[1])
    with torch.no_grad():
        fitted = {k: v.detach().clone() for k, v in variables.items()}
        styles = _expand(G, fitted, config.per_layer)  # one tensor per network, shared by its layers
        output = G.synthesis(styles, _camera(angles), render)
    yaw, pitch = (float(a) for a in angles.detach())
    return Inversion(styles, yaw, pitch, render.fov, losses, output)


def search_grid(config: InversionConfig) -> list[tuple[float, float]]:
    """(yaw, pitch) candidates: the initial angles, then a grid over the pose prior's +-2 std."""
    n_yaw, n_pitch = config.camera_search, max(1, (config.camera_search + 1) // 2)
    yaws = (
        torch.linspace(-1, 1, n_yaw) * SEARCH_SPREAD * K.YAW_STDDEV + K.YAW_MEAN
        if n_yaw > 1
        else [K.YAW_MEAN]
    )
    pitches = (
        torch.linspace(-1, 1, n_pitch) * SEARCH_SPREAD * K.PITCH_STDDEV + K.PITCH_MEAN
        if n_pitch > 1
        else [K.PITCH_MEAN]
    )
    grid = [(float(y), float(p)) for y in yaws for p in pitches]
    return [(config.yaw, config.pitch), *grid]


@torch.no_grad()
def search_camera(
    G: Generator3D, target: torch.Tensor, styles: Styles, render: RenderConfig, config: InversionConfig
) -> tuple[float, float]:
    """The candidate camera of `search_grid` under which `styles` render closest to `target`."""
    candidates = search_grid(config)
    losses = []
    # Eager even for a compiled generator (`compile_generator`): its batches (16 cameras, then the rest)
    # are shapes the fit never renders again, and compiling each of them cost far more than rendering it.
    with uncompiled():
        for part in torch.tensor(candidates, device=target.device).split(SEARCH_BATCH):  # bounded memory
            camera = Camera.from_angles(part[:, 0], part[:, 1])
            batch = {name: w.detach().expand(len(part), -1) for name, w in styles.items()}
            images = G.synthesis(batch, camera, render).img
            losses += [pyramid_loss(image[None], target) for image in images]
    return candidates[int(torch.stack(losses).argmin())]


def _camera(angles: torch.Tensor) -> Camera:
    return Camera.from_angles(angles[0], angles[1]).to(angles.device)


def _noisy(
    styles: Styles, spread: dict[str, float], strength: float, generator: torch.Generator, G
) -> Styles:
    """Styles plus Gaussian noise of `strength` x W's spread (per network); unchanged when 0."""
    if strength == 0:
        return styles
    nerf = set(G.nerf_style_names)
    noisy = {}
    for name, w in styles.items():
        scale = strength * spread["nerf" if name in nerf else "inr"]
        noise = torch.randn(w.shape, generator=generator).to(w.device, w.dtype)  # a half model: half styles
        noisy[name] = w + noise * scale / math.sqrt(w.shape[-1])
    return noisy


def save_inversion(result: Inversion, path: str | Path, extra: dict | None = None) -> Path:
    """Write the styles (safetensors, one tensor per layer) with the camera in its metadata, atomically.
    `extra`: more JSON-able metadata (the CLI records the model and the photo); it cannot replace the
    camera's yaw, pitch or fov (a file with another yaw was written, then refused on loading)."""
    camera = {"yaw": result.yaw, "pitch": result.pitch, "fov": result.fov}
    clash = sorted(set(extra or {}) & set(camera))
    if clash:
        raise ConfigError(f"extra metadata cannot replace the fitted camera's {', '.join(clash)}.")
    meta = camera | (extra or {})
    tensors = {name: w.detach().cpu().clone() for name, w in result.styles.items()}  # no shared storage
    metadata = {"format": FORMAT, "meta": json.dumps(meta)}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def check_target_range(target: torch.Tensor) -> None:
    """A target must be finite and on the [-1, 1] scale (8-bit pixels as x / 127.5 - 1): one given as
    8-bit values (none negative, some above 2) would be fitted as a white image without a word. Renders
    used as targets may overshoot [-1, 1] (no final tanh), so that alone is not refused. One in [0, 1]
    (PIL/torchvision's float scale) is warned of: it would be fitted as a washed-out image, though a
    very bright photo on the right scale can look the same, so it is not refused."""
    if not torch.isfinite(target).all():
        raise ConfigError("the target image holds NaN or infinite values.")
    low, high = target.min().item(), target.max().item()
    if low >= 0 and high > 2:
        raise ConfigError(f"the target image must be on the [-1, 1] scale (8-bit pixels as x / 127.5 - 1); "
                          f"its values run from {low:g} to {high:g}, as 8-bit pixels do.")  # fmt: skip
    if max(-low, high) > FAR_OUTSIDE:  # a render scaled by 255, say: fitted as saturated noise
        raise ConfigError(f"the target image must be on the [-1, 1] scale; its values run from {low:g} to "
                          f"{high:g}.")  # fmt: skip
    if 0 <= low < high <= 1:  # a flat image (a constant test target) says nothing of its scale
        warnings.warn(
            f"the target image's values run from {low:g} to {high:g}: {UNIT_SCALE_WARNING} give x * 2 - 1 "
            "(invert fits images on the [-1, 1] scale, where this one is all bright).",
            stacklevel=3,
        )


UNIT_SCALE_WARNING = "if it is on the [0, 1] scale,"
# Renders overshoot [-1, 1] (no final tanh; an untrained 2D model reaches -9); past this, another scale.
FAR_OUTSIDE = 64.0


@contextmanager
def target_scale_known() -> Iterator[None]:
    """For callers that mapped 8-bit pixels to [-1, 1] themselves (`image_to_target`): an all-bright
    photo is then what it is, not a [0, 1] image, and `invert` does not warn of it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=f".*{re.escape(UNIT_SCALE_WARNING)}")
        yield


def holds_inverted_styles(path: str | Path) -> bool:
    """Whether `path` is a file `save_inversion` wrote (by its metadata; False for anything unreadable)."""
    try:
        with safe_open(str(path), "pt") as f:
            return (f.metadata() or {}).get("format") == FORMAT
    except Exception:  # noqa: BLE001 - safetensors' own error types: not such a file
        return False


def load_inversion(path: str | Path, G: Generator3D | None = None) -> Inversion:
    """Read `save_inversion`'s file; with `G`, also check that the styles fit it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no styles file at {path} (cips3d invert writes styles.safetensors).")
    try:
        with safe_open(str(path), "pt") as f:  # metadata and tensors in one read
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
        meta = json.loads(metadata.get("meta", "{}"))
    except Exception as err:
        raise CheckpointError(f"{path} cannot be read as inverted styles ({error_gist(err, 160)}).") from err
    if metadata.get("format") != FORMAT:
        if set(tensors) == {"w"}:  # what `cips3d invert2d` writes
            raise CheckpointError(f"{path} holds a fitted 2D CIPS style (cips3d invert2d's w.safetensors), "
                                  "for a 2D model; a 3D model takes what cips3d invert writes.")  # fmt: skip
        raise CheckpointError(f"{path} is not a file of inverted styles (cips3d invert writes them).")
    if G is not None:
        tensors = {k: v.to(G.device) for k, v in tensors.items()}  # read on the CPU; checked where used
        try:
            G.check_styles(tensors, 1)
        except ValueError as err:
            raise CheckpointError(
                f"the styles in {path} do not fit this model ({first_sentence(err)})."
            ) from err
    yaw, pitch, fov = _fitted_camera(meta, path)
    return Inversion(tensors, yaw, pitch, fov, model=meta.get("model"))


def _fitted_camera(meta: object, path: Path) -> tuple[float, float, float]:
    """(yaw, pitch, fov) of a styles file's metadata, or a `CheckpointError` naming what is wrong: a
    missing or non-numeric angle ended in a traceback, and NaN or out-of-range ones started a viewer
    that could show no frame."""
    try:
        yaw, pitch, fov = (float(meta[key]) for key in ("yaw", "pitch", "fov"))  # type: ignore[index]
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path} cannot be read as inverted styles: its camera (yaw, pitch, fov) is "
                              f"missing or not numbers ({error_gist(err, 80)}).") from err  # fmt: skip
    if not (is_camera_angle(yaw) and is_pitch(pitch) and 0 < fov < 180):  # NaN fails each
        raise CheckpointError(f"{path} holds an impossible fitted camera (yaw {yaw}, pitch {pitch}, fov "
                              f"{fov}): yaw {ANGLE_RULE}, pitch {PITCH_RULE}, fov in (0, 180).")  # fmt: skip
    return yaw, pitch, fov


def image_to_target(rgb: np.ndarray) -> torch.Tensor:
    """uint8 [S, S, 3] -> float [1, 3, S, S] in [-1, 1]."""
    if not is_uint8_array(rgb, 3, (3,)):
        raise ConfigError(f"image_to_target takes uint8 [H, W, 3] pixels (0 to 255), got {array_kind(rgb)}.")
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1.0
