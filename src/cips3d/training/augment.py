"""DiffAugment (Zhao et al. 2020) as CIPS-3D's discriminator applies it (spec 3.6, fixtures/official-d §5).

Policy 'color,translation,cutout' on [-1, 1] images, per sample: brightness + U(-0.5, 0.5), saturation
x U(0, 2) around the channel mean, contrast x U(0.5, 1.5) around the image mean, an integer shift of up
to int(S/8 + 0.5) pixels per axis with zero fill, and a zeroed square of side int(0.2 S + 0.5).

All random numbers are drawn by `draw_diff_augment` from an explicit generator, in the official order
(3 `rand`, then 2 `randint` for the shift, then 2 for the cutout centre), so a generator seeded like
`torch.manual_seed(s)` reproduces the official draws; or they are injected as an `AugmentDraws`.
Every step is differentiable in the image (R1 is taken through the augmentation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from cips3d import constants as K
from cips3d.errors import ConfigError

POLICIES = ("color", "translation", "cutout")
_DRAW_NAMES = {"color": ("u_b", "u_s", "u_c"), "translation": ("t_h", "t_w"), "cutout": ("o_h", "o_w")}


@dataclass(frozen=True)
class DiffAugmentConfig:
    """Which augmentations run, in which order, and how strong the geometric ones are."""

    policy: tuple[str, ...] | str = K.DIFFAUG_POLICY
    """Augmentations in the order they run (and draw); a comma string like the official one is accepted."""
    translation_ratio: float = K.DIFFAUG_TRANSLATION_RATIO
    """Largest shift as a fraction of the image side (rounded: int(S * ratio + 0.5))."""
    cutout_ratio: float = K.DIFFAUG_CUTOUT_RATIO
    """Side of the zeroed square as a fraction of the image side (0.2 in the CIPS-3D discriminator)."""

    def __post_init__(self) -> None:
        policy = self.policy
        if isinstance(policy, str):
            policy = tuple(p.strip() for p in policy.split(",") if p.strip())
        object.__setattr__(self, "policy", tuple(policy))
        unknown = [p for p in self.policy if p not in POLICIES]
        if unknown or len(set(self.policy)) != len(self.policy):
            raise ConfigError(
                f"DiffAugment policy must be distinct names from {', '.join(POLICIES)}, got {self.policy}."
            )
        for name in ("translation_ratio", "cutout_ratio"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ConfigError(f"DiffAugment {name} must be in [0, 1], got {value}.")

    def shift(self, size: int) -> int:
        """Largest translation in pixels for an image side of `size`."""
        return int(size * self.translation_ratio + 0.5)

    def cutout_size(self, size: int) -> int:
        """Side of the cutout square in pixels for an image side of `size`."""
        return int(size * self.cutout_ratio + 0.5)

    def draw_names(self) -> tuple[str, ...]:
        """The `AugmentDraws` fields this policy uses, in draw order."""
        return tuple(name for p in self.policy for name in _DRAW_NAMES[p])


@dataclass(frozen=True)
class AugmentDraws:
    """The random numbers of one augmentation call on a batch of B images (None: not used)."""

    u_b: torch.Tensor | None = None
    """[B, 1, 1, 1] U(0, 1), brightness: x + (u_b - 0.5)."""
    u_s: torch.Tensor | None = None
    """[B, 1, 1, 1] U(0, 1), saturation factor 2 u_s."""
    u_c: torch.Tensor | None = None
    """[B, 1, 1, 1] U(0, 1), contrast factor u_c + 0.5."""
    t_h: torch.Tensor | None = None
    """[B, 1, 1] integers in [-shift, shift]: output row i reads input row i + t_h."""
    t_w: torch.Tensor | None = None
    """[B, 1, 1] the same for columns."""
    o_h: torch.Tensor | None = None
    """[B, 1, 1] integers in [0, H + 1 - k % 2): centre row of the cutout square."""
    o_w: torch.Tensor | None = None
    """[B, 1, 1] the same for columns (with W)."""

    @classmethod
    def from_official_order(cls, values: Sequence[torch.Tensor], config: DiffAugmentConfig) -> AugmentDraws:
        """The draws of one official DiffAugment call, in the order it makes them (7 for the full policy)."""
        names = config.draw_names()
        if len(values) != len(names):
            raise ValueError(f"policy {config.policy} makes {len(names)} draws ({names}), got {len(values)}.")
        return cls(**dict(zip(names, values, strict=True)))


def _rand(batch: int, generator: torch.Generator | None, dtype: torch.dtype, device) -> torch.Tensor:
    if generator is None:
        return torch.rand(batch, 1, 1, 1, dtype=dtype, device=device)
    return torch.rand(batch, 1, 1, 1, generator=generator, dtype=dtype, device=generator.device).to(device)


def _randint(low: int, high: int, batch: int, generator: torch.Generator | None, device) -> torch.Tensor:
    if generator is None:
        return torch.randint(low, high, (batch, 1, 1), device=device)
    return torch.randint(low, high, (batch, 1, 1), generator=generator, device=generator.device).to(device)


def draw_diff_augment(
    config: DiffAugmentConfig,
    batch: int,
    size: tuple[int, int],
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> AugmentDraws:
    """Draw everything one `diff_augment` call needs, in the official order.

    Args:
        config: the policy and ratios.
        batch: B, the number of images.
        size: (H, W) of the images.
        generator: source of the draws (on its own device; results are moved to `device`); None uses
            torch's global generator, exactly like the official code.
        dtype: dtype of the uniform draws (the official code draws in the image dtype).
        device: where the draws end up (the image device).
    """
    height, width = size
    values: dict[str, torch.Tensor] = {}
    for p in config.policy:
        if p == "color":
            for name in _DRAW_NAMES[p]:
                values[name] = _rand(batch, generator, dtype, device)
        elif p == "translation":
            s_h, s_w = config.shift(height), config.shift(width)
            values["t_h"] = _randint(-s_h, s_h + 1, batch, generator, device)
            values["t_w"] = _randint(-s_w, s_w + 1, batch, generator, device)
        else:
            # The official centre range: an odd square may be centred on the last pixel, an even one past it.
            k_h, k_w = config.cutout_size(height), config.cutout_size(width)
            values["o_h"] = _randint(0, height + 1 - k_h % 2, batch, generator, device)
            values["o_w"] = _randint(0, width + 1 - k_w % 2, batch, generator, device)
    return AugmentDraws(**values)


def adjust_color(x: torch.Tensor, u_b: torch.Tensor, u_s: torch.Tensor, u_c: torch.Tensor) -> torch.Tensor:
    """Brightness, saturation, contrast (official expressions and order). x [B, C, H, W], u [B, 1, 1, 1]."""
    x = x + (u_b.to(x) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (u_s.to(x) * 2) + mean
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (u_c.to(x) + 0.5) + mean


def translate(x: torch.Tensor, t_h: torch.Tensor, t_w: torch.Tensor) -> torch.Tensor:
    """y[b, :, i, j] = x[b, :, i + t_h[b], j + t_w[b]] where that pixel exists, else 0.

    Args:
        x: [B, C, H, W].
        t_h, t_w: [B, 1, 1] integer shifts.
    """
    batch, _, height, width = x.shape
    rows = torch.arange(height, device=x.device).view(1, height, 1) + t_h.to(x.device).reshape(batch, 1, 1)
    cols = torch.arange(width, device=x.device).view(1, 1, width) + t_w.to(x.device).reshape(batch, 1, 1)
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)  # [B, H, W]
    index = torch.arange(batch, device=x.device).view(batch, 1, 1)
    moved = x.permute(0, 2, 3, 1)[index, rows.clamp(0, height - 1), cols.clamp(0, width - 1)]
    return torch.where(inside[..., None], moved, 0.0).permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, o_h: torch.Tensor, o_w: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Zero rows o_h - k_h//2 ... o_h - k_h//2 + k_h - 1 x the same columns, clipped at the image edge.

    Args:
        x: [B, C, H, W].
        o_h, o_w: [B, 1, 1] integer centres.
        size: (k_h, k_w), the square's side in pixels.
    """
    batch, _, height, width = x.shape
    (k_h, k_w), device = size, x.device
    top = o_h.to(device).reshape(batch, 1, 1) - k_h // 2
    left = o_w.to(device).reshape(batch, 1, 1) - k_w // 2
    rows = torch.arange(height, device=device).view(1, height, 1)
    cols = torch.arange(width, device=device).view(1, 1, width)
    cut = (rows >= top) & (rows < top + k_h) & (cols >= left) & (cols < left + k_w)  # [B, H, W]
    # A multiplicative mask, as official (so the gradient in the square is zero, not undefined).
    return x * (~cut).to(x.dtype)[:, None]


def _require_draws(draws: AugmentDraws, names: tuple[str, ...], batch: int) -> None:
    for name in names:
        value = getattr(draws, name)
        if value is None:
            raise ValueError(f"injected DiffAugment draws lack {name!r}, which the policy needs.")
        if value.numel() != batch:
            raise ValueError(
                f"injected DiffAugment draw {name!r} has {value.numel()} values for {batch} images."
            )


def diff_augment(
    x: torch.Tensor,
    config: DiffAugmentConfig,
    *,
    generator: torch.Generator | None = None,
    draws: AugmentDraws | None = None,
) -> torch.Tensor:
    """Augment a batch of images, each with its own random parameters.

    Args:
        x: [B, C, H, W] images in [-1, 1].
        config: policy and ratios.
        generator: source of the draws when `draws` is None (None: torch's global generator).
        draws: injected random numbers (e.g. the official ones); nothing is drawn then.

    Returns:
        [B, C, H, W], same dtype and device, contiguous.
    """
    batch, _, height, width = x.shape
    if draws is None:
        draws = draw_diff_augment(
            config, batch, (height, width), generator=generator, dtype=x.dtype, device=x.device
        )
    _require_draws(draws, config.draw_names(), batch)
    d = draws
    for p in config.policy:
        if p == "color":
            x = adjust_color(
                x, d.u_b.reshape(batch, 1, 1, 1), d.u_s.reshape(batch, 1, 1, 1), d.u_c.reshape(batch, 1, 1, 1)
            )
        elif p == "translation":
            x = translate(x, d.t_h, d.t_w)
        else:
            x = cutout(x, d.o_h, d.o_w, (config.cutout_size(height), config.cutout_size(width)))
    return x.contiguous()
