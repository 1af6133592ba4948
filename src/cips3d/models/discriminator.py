"""The CIPS-3D discriminators (spec 3.2-3.4): a multi-scale residual D for the INR images and an aux D.

    D = Discriminator(discriminator_preset("ffhq"))
    logits = D(images, aux_images, alpha=0.5, augment=DiffAugmentConfig(), generator=g)   # [2B, 1]

Each sub-discriminator has a 1x1 input conv per resolution (`conv_in`), residual blocks that halve the
resolution from the input size down to 4x4 (`blocks`), a fade-in from the half-size image while
`alpha` < 1, then `final_conv` (3x3), `space_linear` and `out_linear`. There is no minibatch-stddev
(the official FFHQ config sets stddev_group = 0). Official state dicts go through
`cips3d.convert.official_d`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cips3d import constants as K
from cips3d.errors import ConfigError
from cips3d.nn.equalized import ConvLayer, EqualLinear, ResBlock
from cips3d.seeding import check_generator
from cips3d.training.augment import AugmentDraws, DiffAugmentConfig, diff_augment

Channels = dict[int, int]
"""Resolution -> channel width (the official `channels` table)."""


def official_main_channels(channel_multiplier: int = K.D_CHANNEL_MULTIPLIER) -> Channels:
    """The official default table: 512 up to 32 px, then 256, 128, 64, 32, 16 times the multiplier."""
    scaled = {res: ch * channel_multiplier for res, ch in K.D_MAIN_SCALED_CHANNELS}
    return {**dict(K.D_MAIN_FIXED_CHANNELS), **scaled}


def official_aux_channels() -> Channels:
    """The aux discriminator's hard-coded table: 256 up to 128 px, then 128, 64, 32."""
    return dict(K.D_AUX_CHANNELS)


def _is_power_of_two(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0 and value & (value - 1) == 0


def _check_channels(table: Any, max_size: int, name: str) -> Channels:
    if not isinstance(table, dict):
        raise ConfigError(f"{name} must be a dict resolution -> channels, got {type(table).__name__}.")
    bad = [r for r, c in table.items() if not (_is_power_of_two(r) and r >= K.D_FINAL_SIZE and _positive(c))]
    if bad:
        raise ConfigError(
            f"{name} needs power-of-two resolutions >= 4 and positive widths; bad entries {bad}."
        )
    needed = [2**i for i in range(2, max_size.bit_length())]
    missing = [r for r in needed if r not in table]
    if missing:
        raise ConfigError(f"{name} lacks resolutions {missing} (every one from 4 to max_size is used).")
    return dict(sorted(table.items()))


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Both discriminators: the main one (INR images) and the aux one (low-quality NeRF images)."""

    max_size: int = K.D_MAX_SIZE
    """Largest input size; residual blocks exist for max_size ... 8."""
    main_channels: Channels = field(default_factory=official_main_channels)
    """Main D widths per resolution; a `conv_in` is built for every entry (the official code does)."""
    aux_channels: Channels = field(default_factory=official_aux_channels)
    """Aux D widths per resolution."""
    main_first_downsample: bool = False
    """Main D downsamples in conv2 of each block (official), or in conv1 when True."""
    aux_first_downsample: bool = True
    """Aux D downsamples in conv1 of each block (official)."""

    def __post_init__(self) -> None:
        if not (_is_power_of_two(self.max_size) and self.max_size >= K.D_MIN_INPUT_SIZE):
            raise ConfigError(f"max_size must be a power of two >= 8, got {self.max_size!r}.")
        # Copies, sorted by resolution, so a caller's dict can change without touching the config.
        object.__setattr__(self, "main_channels", _check_channels(self.main_channels, self.max_size, "main"))
        object.__setattr__(self, "aux_channels", _check_channels(self.aux_channels, self.max_size, "aux"))

    @property
    def input_sizes(self) -> tuple[int, ...]:
        """The image sizes the discriminators accept: 8, 16, ..., max_size."""
        return tuple(2**i for i in range(3, self.max_size.bit_length()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (resolution keys become strings)."""
        return {
            "max_size": self.max_size,
            "main_channels": {str(r): c for r, c in self.main_channels.items()},
            "aux_channels": {str(r): c for r, c in self.aux_channels.items()},
            "main_first_downsample": self.main_first_downsample,
            "aux_first_downsample": self.aux_first_downsample,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiscriminatorConfig:
        """Inverse of `to_dict` (integer or string resolution keys)."""
        try:
            values = dict(data)
            for key in ("main_channels", "aux_channels"):
                values[key] = {int(r): c for r, c in values[key].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ConfigError(f"discriminator config is malformed ({err}).") from err
        try:
            return cls(**values)
        except TypeError as err:  # an unknown or missing field
            raise ConfigError(f"discriminator config is malformed ({err}).") from err

    @classmethod
    def from_official_kwargs(
        cls, main_kwargs: dict[str, Any], aux_kwargs: dict[str, Any]
    ) -> DiscriminatorConfig:
        """From the two official `Discriminator_MultiScale(**kwargs)` dicts (main_disc, aux_disc).

        `diffaug` is ignored: augmentation is a forward-time option here (`augment=`). Keys the official
        class swallows with **kwargs are ignored as well.
        """
        main_size, main_channels, main_first = _read_official(main_kwargs, "main_disc")
        aux_size, aux_channels, aux_first = _read_official(aux_kwargs, "aux_disc")
        if main_size != aux_size:
            raise ConfigError(f"main and aux max_size differ ({main_size} and {aux_size}); ours share one.")
        return cls(main_size, main_channels, aux_channels, main_first, aux_first)


def _read_official(kwargs: dict[str, Any], name: str) -> tuple[int, Channels, bool]:
    """(max_size, channel table, first_downsample) from one official constructor dict."""
    # Defaults are the official constructor's; its stddev_group default is 4 (spec Correction 9).
    if kwargs.get("stddev_group", 4) != 0:
        raise ConfigError(f"{name}: only stddev_group 0 (no minibatch-stddev, as in CIPS-3D) is supported.")
    if list(kwargs.get("blur_kernel", K.D_BLUR_TAPS)) != list(K.D_BLUR_TAPS):
        raise ConfigError(f"{name}: only the [1, 3, 3, 1] blur kernel is supported.")
    if kwargs.get("input_size", 3) != 3:
        raise ConfigError(f"{name}: only RGB inputs (input_size 3) are supported.")
    if "max_size" not in kwargs:
        raise ConfigError(f"{name}: the official kwargs lack max_size.")
    channels = kwargs.get("channels")
    if channels is None:
        channels = official_main_channels(kwargs.get("channel_multiplier", K.D_CHANNEL_MULTIPLIER))
    try:
        channels = {int(r): c for r, c in channels.items()}
    except (AttributeError, ValueError) as err:
        raise ConfigError(f"{name}: channels must map resolutions to widths ({err}).") from err
    return kwargs["max_size"], channels, bool(kwargs.get("first_downsample", False))


def _tiny() -> DiscriminatorConfig:
    """Small widths for CPU toy training at 16, 32 and 64 px (371,290 parameters)."""
    return DiscriminatorConfig(
        max_size=64,
        main_channels={4: 64, 8: 64, 16: 64, 32: 32, 64: 16},
        aux_channels={4: 32, 8: 32, 16: 32, 32: 16, 64: 8},
    )


DISCRIMINATOR_PRESETS = {"ffhq": DiscriminatorConfig, "tiny": _tiny}


def discriminator_preset(name: str) -> DiscriminatorConfig:
    """The named config: `ffhq` (the official D_cfg, 37,518,914 parameters) or `tiny` (CPU)."""
    try:
        return DISCRIMINATOR_PRESETS[name]()
    except KeyError:
        known = ", ".join(sorted(DISCRIMINATOR_PRESETS))
        raise ConfigError(f"unknown discriminator preset {name!r}; known presets: {known}.") from None


class MultiScaleDiscriminator(nn.Module):
    """One residual discriminator with an input layer per resolution (official `Discriminator_MultiScale`).

    Args:
        channels: resolution -> width; `conv_in` exists for every entry.
        max_size: blocks exist for max_size, max_size/2, ..., 8.
        first_downsample: stride-2 step in conv1 (aux D) instead of conv2 (main D).
    """

    def __init__(self, channels: Channels, max_size: int, first_downsample: bool) -> None:
        super().__init__()
        self.conv_in = nn.ModuleDict({str(r): ConvLayer(3, c, 1) for r, c in sorted(channels.items())})
        sizes = [2**i for i in range(max_size.bit_length() - 1, 2, -1)]  # max_size ... 8
        self.blocks = nn.ModuleDict(
            {str(r): ResBlock(channels[r], channels[r // 2], first_downsample) for r in sizes}
        )
        width = channels[K.D_FINAL_SIZE]
        self.final_conv = ConvLayer(width, width, 3)
        self.space_linear = EqualLinear(width * K.D_FINAL_SIZE**2, width, activate=True)
        self.out_linear = EqualLinear(width, 1)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None) -> None:
        """Weights N(0, 1), biases 0, drawn in the official construction order."""
        for layer in [*self.conv_in.values(), *self.blocks.values()]:
            layer.reset_parameters(generator)
        for layer in (self.final_conv, self.space_linear, self.out_linear):
            layer.reset_parameters(generator)

    def forward(
        self,
        images: torch.Tensor,
        alpha: float = 1.0,
        augment: DiffAugmentConfig | None = None,
        generator: torch.Generator | None = None,
        draws: AugmentDraws | None = None,
    ) -> torch.Tensor:
        """images [B, 3, S, S] -> logits [B, 1].

        With `augment`, DiffAugment runs first (its draws from `generator`, or the injected `draws`);
        the fade-in and every layer see the augmented image, as official. While alpha < 1 the output of
        the first block is blended with conv_in[S/2] of the half-size (2x2-average) image.
        """
        size = self._check(images, alpha)
        x = images
        if augment is not None:
            x = diff_augment(x, augment, generator=generator, draws=draws)
        elif draws is not None:
            raise ValueError("DiffAugment draws were given but augment is None.")
        h = self.blocks[str(size)](self.conv_in[str(size)](x))
        if alpha < 1:
            # Bilinear at scale 1/2 (align_corners False) is exactly 2x2 averaging, as the official code does.
            half = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
            h = alpha * h + (1 - alpha) * self.conv_in[str(size // 2)](half)
        res = size // 2
        while res > K.D_FINAL_SIZE:
            h = self.blocks[str(res)](h)
            res //= 2
        h = self.final_conv(h).flatten(1)  # channel-major, as the official view(batch, -1)
        return self.out_linear(self.space_linear(h))

    def _check(self, images: torch.Tensor, alpha: float) -> int:
        if images.dim() != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
            raise ConfigError(f"the discriminator takes [B, 3, S, S] images, got {tuple(images.shape)}.")
        size = images.shape[-1]
        if str(size) not in self.blocks:
            sizes = ", ".join(reversed(list(self.blocks)))
            raise ConfigError(f"image size {size} is not supported by this discriminator ({sizes}).")
        if not 0 <= alpha <= 1:
            raise ConfigError(f"alpha must be in [0, 1], got {alpha}.")
        return size


def _split_draws(draws: Sequence[AugmentDraws] | None, calls: int) -> list[AugmentDraws | None]:
    if draws is None:
        return [None] * calls
    if isinstance(draws, AugmentDraws) or len(draws) != calls:
        raise ValueError(f"draws must be a sequence of {calls} AugmentDraws (main first, then aux).")
    return list(draws)


class Discriminator(nn.Module):
    """The main and aux discriminators of CIPS-3D (official `Discriminator_MultiScale_Aux`).

    Args:
        config: widths and max size (`discriminator_preset('ffhq')` is the official D).
        generator: source of the initial weights; None means a fresh generator seeded with 0. Seeded like
            `torch.manual_seed(s)`, it gives the weights of the official constructor for seed s.
        initialize: False leaves the weights uninitialised, for a caller that loads them next.
    """

    def __init__(
        self, config: DiscriminatorConfig, generator: torch.Generator | None = None, initialize: bool = True
    ) -> None:
        super().__init__()
        self.config = config
        self.main = MultiScaleDiscriminator(
            config.main_channels, config.max_size, config.main_first_downsample
        )
        self.aux = MultiScaleDiscriminator(config.aux_channels, config.max_size, config.aux_first_downsample)
        if initialize:
            self.reset_parameters(generator if generator is not None else torch.Generator().manual_seed(0))

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None) -> None:
        """Official init: main then aux, each in construction order."""
        check_generator(generator)
        self.main.reset_parameters(generator)
        self.aux.reset_parameters(generator)

    def forward(
        self,
        images: torch.Tensor,
        aux_images: torch.Tensor | None = None,
        *,
        alpha: float = 1.0,
        augment: DiffAugmentConfig | None = None,
        generator: torch.Generator | None = None,
        draws: Sequence[AugmentDraws] | None = None,
    ) -> torch.Tensor:
        """Logits of the main D on `images` [B, 3, S, S], then of the aux D on `aux_images` if given.

        Args:
            images: [B, 3, S, S] in [-1, 1] (the INR images, or reals).
            aux_images: [B', 3, S, S] for the aux D (the aux images, or the same reals), or None.
            alpha: fade-in weight of the full-resolution path (1 = no fade-in).
            augment: DiffAugment settings, or None for no augmentation.
            generator: source of the augmentation draws (None: torch's global generator).
            draws: injected augmentation draws, one per sub-discriminator call (main first, then aux).

        Returns:
            [B, 1] logits, or [B + B', 1] = cat(main, aux) when `aux_images` is given (the official
            routing of its [INR; aux] batch).
        """
        calls = 1 if aux_images is None else 2
        main_draws, *aux_draws = _split_draws(draws, calls)
        logits = self.main(images, alpha, augment, generator, main_draws)
        if aux_images is None:
            return logits
        return torch.cat([logits, self.aux(aux_images, alpha, augment, generator, aux_draws[0])])

    def extra_repr(self) -> str:
        sizes = self.config.input_sizes
        return f"sizes {sizes[0]}..{sizes[-1]}, parameters {sum(p.numel() for p in self.parameters()):,}"
