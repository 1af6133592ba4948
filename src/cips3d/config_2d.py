"""Configs of the 2D CIPS generator (spec 8.1), the predecessor CIPS-3D's INR comes from."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from cips3d.errors import ConfigError

# Spec 8.1: FFHQ/Churches `CIPSskip` at 256 px, channel multiplier 2: 44,317,092 parameters.
OFFICIAL_WIDTHS = (512, 512, 512, 512, 512, 256, 128)
FOURIER_INIT = (9 / 2) ** 0.5  # the Fourier layer's weight ~ U(+-sqrt(9/2))
MAPPING_LR_MUL = 0.01


@dataclass(frozen=True)
class Cips2DConfig:
    """CIPSskip (or CIPSres): coordinates -> Fourier features + learned embeddings -> styled FC pairs ->
    RGB, summed over the pairs' heads (or from one head after residual pairs)."""

    size: int = 256
    """Side of the learned coordinate-embedding grid: the training resolution (its height, with `width`)."""
    width: int | None = None
    """Columns of the embedding grid when the training images are not square (panoramas: the whole
    turn); None: `size`."""
    style_dim: int = 512
    """Width of z, of every mapping layer and of w."""
    mapping_layers: int = 8
    fourier_dim: int = 512
    embedding_dim: int = 512
    first_width: int = 512
    """Width of the first styled FC, which reads the concatenated coordinate encodings."""
    widths: tuple[int, ...] = OFFICIAL_WIDTHS
    """One pair of styled FCs per entry, each pair followed by a to-RGB head."""
    coordinates: Literal["plane", "cylinder"] = "plane"
    """'plane': (x, y) in [-1, 1]^2, the released models. 'cylinder': x is an angle, x = -1 and x = 1
    are the same direction (x * pi on the unit circle, as the paper's panoramas do, spec 8.3): the
    Fourier features read (cos, sin, y) and the learned embedding wraps around horizontally, so every
    horizontal period of the coordinates renders the same image."""
    architecture: Literal["skip", "res"] = "skip"
    """'skip' (CIPSskip, FFHQ and Churches): a to-RGB head after every pair, the outputs summed. 'res'
    (CIPSres, Landscapes): every pair is a residual block, (pair(x) + skip(x)) / sqrt(2) with a 1x1
    skip where the width changes, and one to-RGB head at the end."""
    embedding_align_corners: bool = True
    """How the learned embedding is read between and beyond its entries. True (ours): entry (i, j) sits
    exactly at the training grid's coordinates. False: the official code's `grid_sample` default (since
    PyTorch 1.3), which puts the grid's ends half an entry outside the table and, outside training,
    samples the table even on the training grid; models converted from official checkpoints use it so
    that they render the official images."""

    def __post_init__(self) -> None:
        counts = {
            "size": self.size, "style_dim": self.style_dim, "mapping_layers": self.mapping_layers,
            "fourier_dim": self.fourier_dim, "embedding_dim": self.embedding_dim,
            "first_width": self.first_width,
        }  # fmt: skip
        if self.width is not None:
            counts["width"] = self.width
        least = {"size": 2, "width": 2}  # a grid of one row or column has no extent to learn
        bad = [f"{k}={v!r}" for k, v in counts.items() if not (isinstance(v, int) and v >= least.get(k, 1))]
        if self.coordinates not in ("plane", "cylinder"):
            raise ConfigError(f"coordinates must be 'plane' or 'cylinder', not {self.coordinates!r}.")
        if self.architecture not in ("skip", "res"):
            raise ConfigError(f"architecture must be 'skip' or 'res', not {self.architecture!r}.")
        if not isinstance(self.embedding_align_corners, bool):
            value = self.embedding_align_corners
            raise ConfigError(f"embedding_align_corners must be true or false, not {value!r}.")
        if self.panorama and not self.embedding_align_corners:
            raise ConfigError("cylinder coordinates need embedding_align_corners=True (the seam's layout).")
        if bad or not self.widths or any(not (isinstance(w, int) and w >= 1) for w in self.widths):
            raise ConfigError(
                "a 2D CIPS config needs positive widths and a size and width of at least 2 "
                f"({', '.join(bad) or 'widths'})."
            )

    @property
    def panorama(self) -> bool:
        """Cylinder coordinates: the images are 360-degree panoramas, read whole (never cropped, so
        their ends still meet) and looked at round the cylinder."""
        return self.coordinates == "cylinder"

    @property
    def grid_width(self) -> int:
        """Columns of the training grid (`width`, or `size` for square images)."""
        return self.size if self.width is None else self.width

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cips2DConfig:
        try:
            return cls(**{**data, "widths": tuple(data["widths"])})
        except (KeyError, TypeError) as err:
            raise ConfigError(f"2D CIPS config is malformed ({err}).") from err


STYLEGAN2_CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
"""StyleGAN2's discriminator widths per resolution before the channel multiplier (applied from 64 px
on; 512 is the cap), as CIPS's train.py uses them (spec 8.2)."""


@dataclass(frozen=True)
class Cips2DDiscriminatorConfig:
    """CIPS's discriminator (spec 8.2): StyleGAN2's residual discriminator with minibatch standard
    deviation, reading the image (`--img2dis`, FFHQ/Churches) or the image and its 2 coordinate maps."""

    size: int = 256
    """Input resolution (a power of two, 8 to 1024)."""
    channel_multiplier: int = 2
    input_channels: Literal[3, 5] = 3
    """3: the image; 5: the image and the (x, y) coordinate maps it was rendered at."""
    stddev_group: int = 4
    """Samples per minibatch-stddev group (fewer when the batch is smaller)."""
    max_channels: int = 512
    """Cap on every width (StyleGAN2: 512); smaller for CPU-sized presets."""

    def __post_init__(self) -> None:
        if self.size not in STYLEGAN2_CHANNELS or self.size < 8:
            raise ConfigError(f"discriminator size must be a power of two from 8 to 1024, not {self.size!r}.")
        if self.input_channels not in (3, 5):
            raise ConfigError(f"input_channels must be 3 (image) or 5 (image and coordinates), not "
                              f"{self.input_channels!r}.")  # fmt: skip
        if min(self.channel_multiplier, self.stddev_group, self.max_channels) < 1:
            raise ConfigError("channel_multiplier, stddev_group and max_channels must be positive.")

    def channels(self, resolution: int) -> int:
        """The width of the feature maps at `resolution`."""
        base = STYLEGAN2_CHANNELS[resolution]
        width = base * self.channel_multiplier if resolution >= 64 else base
        return min(width, self.max_channels)


def is_2d_run_config(config: dict[str, Any]) -> bool:
    """Whether a training snapshot's config is a 2D run's: it names its generator by preset (a 3D run
    stores the generator's whole config there)."""
    return isinstance(config.get("generator"), str)


CIPS2D_PRESETS = {
    "cips-256": Cips2DConfig,
    "cips-tiny": lambda: Cips2DConfig(
        size=32,
        style_dim=64,
        mapping_layers=4,
        fourier_dim=64,
        embedding_dim=64,
        first_width=64,
        widths=(64, 64, 32),
    ),  # fmt: skip
}


def cips2d_preset(name: str) -> Cips2DConfig:
    """`cips-256` (the official FFHQ/Churches network) or `cips-tiny` (CPU-sized)."""
    try:
        return CIPS2D_PRESETS[name]()
    except KeyError:
        raise ConfigError(f"unknown 2D CIPS preset {name!r}; known: {', '.join(CIPS2D_PRESETS)}.") from None


CIPS2D_D_PRESETS = {
    "cips-256": Cips2DDiscriminatorConfig,
    "cips-tiny": lambda: Cips2DDiscriminatorConfig(size=32, max_channels=64),
}


def cips2d_discriminator_preset(name: str) -> Cips2DDiscriminatorConfig:
    """`cips-256` (StyleGAN2's 256 px discriminator, as CIPS trains with it) or `cips-tiny` (CPU-sized)."""
    try:
        return CIPS2D_D_PRESETS[name]()
    except KeyError:
        known = ", ".join(CIPS2D_D_PRESETS)
        raise ConfigError(f"unknown 2D CIPS discriminator preset {name!r}; known: {known}.") from None
