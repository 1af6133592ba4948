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
    """CIPSskip: coordinates -> Fourier features + learned embeddings -> styled FC pairs, RGB summed."""

    size: int = 256
    """Side of the learned coordinate-embedding grid: the training resolution."""
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

    def __post_init__(self) -> None:
        counts = {
            "size": self.size, "style_dim": self.style_dim, "mapping_layers": self.mapping_layers,
            "fourier_dim": self.fourier_dim, "embedding_dim": self.embedding_dim,
            "first_width": self.first_width,
        }  # fmt: skip
        bad = [f"{k}={v!r}" for k, v in counts.items() if not (isinstance(v, int) and v >= 1)]
        if self.coordinates not in ("plane", "cylinder"):
            raise ConfigError(f"coordinates must be 'plane' or 'cylinder', not {self.coordinates!r}.")
        if (
            bad
            or self.size < 2
            or not self.widths
            or any(not (isinstance(w, int) and w >= 1) for w in self.widths)
        ):
            raise ConfigError(
                f"a 2D CIPS config needs positive widths and a size >= 2 ({', '.join(bad) or 'widths'})."
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cips2DConfig:
        try:
            return cls(**{**data, "widths": tuple(data["widths"])})
        except (KeyError, TypeError) as err:
            raise ConfigError(f"2D CIPS config is malformed ({err}).") from err


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
