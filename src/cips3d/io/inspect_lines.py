"""The (label, value) lines of `cips3d info` and the model summaries that models and runs share."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from cips3d.config import GeneratorConfig, preset_of
from cips3d.config_2d import Cips2DConfig
from cips3d.convert.official import OURS_ONLY

Lines = list[tuple[str, Any]]
"""(label, value): counts and scores as numbers (`cips3d info --json` keeps them so), the rest as words;
a render's record keeps its JSON values (lists, settings by name, booleans)."""


def parameter_count(state: Mapping[str, torch.Tensor]) -> int:
    """Values in a generator's state dict, less our truncation-mean buffers (not parameters)."""
    return sum(math.prod(t.shape) for k, t in state.items() if k not in OURS_ONLY)


def summary_3d(config: GeneratorConfig) -> str:
    """A 3D generator config in words: its preset, or that it is its own."""
    preset = preset_of(config)
    return f"preset {preset}" if preset else "a custom config (see config.json)"


def summary_2d(config: Cips2DConfig) -> str:
    """A 2D CIPS generator config in words: architecture, size, coordinates, widths."""
    widths = "/".join(str(w) for w in (config.first_width, *config.widths))
    where = "official alignment" if not config.embedding_align_corners else "ours"
    return (f"CIPS{config.architecture} {config.grid_width}x{config.size} px, {config.coordinates} "
            f"coordinates, widths {widths}, embedding sampling: {where}")  # fmt: skip
