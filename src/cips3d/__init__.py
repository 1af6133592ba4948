"""cips3d: CIPS-3D, the 3D-aware GAN, in plain PyTorch.

Public API:
    Generator3D, GeneratorOutput                                the generator and what it returns
    Discriminator, DiscriminatorConfig, discriminator_preset    the main + aux discriminators (training)
    GeneratorConfig, MappingConfig, NerfFieldConfig, InrConfig  the generator's typed configs
    RenderConfig, PoseConfig, generator_preset                  rendering, camera poses; presets
    Camera, RenderDraws                                         explicit cameras and injected random numbers
    Styles, generators_for_seeds                                per-layer styles; one torch.Generator per seed
    CheckpointError, ConfigError, UserError                     what a user's mistake raises
    load_generator, save_generator                              ours (folder) and official .pth
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Where each public name lives. They are imported on first use, so that `import cips3d` (and the command's
# start, which must answer Ctrl-C in one sentence) does not wait for torch before it has to.
_PUBLIC = {
    "cips3d.config": (
        "GeneratorConfig", "InrConfig", "MappingConfig", "NerfFieldConfig", "PoseConfig", "RenderConfig",
        "generator_preset",
    ),
    "cips3d.errors": ("CheckpointError", "ConfigError", "UserError"),
    "cips3d.io.checkpoint": ("load_generator", "save_generator"),
    "cips3d.models.discriminator": ("Discriminator", "DiscriminatorConfig", "discriminator_preset"),
    "cips3d.models.generator3d": ("Generator3D",),
    "cips3d.outputs": ("GeneratorOutput", "Styles"),
    "cips3d.rendering.cameras": ("Camera",),
    "cips3d.rendering.volume": ("RenderDraws",),
    "cips3d.seeding": ("generators_for_seeds",),
}  # fmt: skip
_MODULE_OF = {name: module for module, names in _PUBLIC.items() for name in names}


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'cips3d' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF})


if TYPE_CHECKING:  # what type checkers and editors see
    from cips3d.config import (
        GeneratorConfig,
        InrConfig,
        MappingConfig,
        NerfFieldConfig,
        PoseConfig,
        RenderConfig,
        generator_preset,
    )
    from cips3d.errors import CheckpointError, ConfigError, UserError
    from cips3d.io.checkpoint import load_generator, save_generator
    from cips3d.models.discriminator import Discriminator, DiscriminatorConfig, discriminator_preset
    from cips3d.models.generator3d import Generator3D
    from cips3d.outputs import GeneratorOutput, Styles
    from cips3d.rendering.cameras import Camera
    from cips3d.rendering.volume import RenderDraws
    from cips3d.seeding import generators_for_seeds

__all__ = [
    "Camera",
    "CheckpointError",
    "ConfigError",
    "Discriminator",
    "DiscriminatorConfig",
    "Generator3D",
    "GeneratorConfig",
    "GeneratorOutput",
    "InrConfig",
    "MappingConfig",
    "NerfFieldConfig",
    "PoseConfig",
    "RenderConfig",
    "RenderDraws",
    "Styles",
    "UserError",
    "discriminator_preset",
    "generator_preset",
    "generators_for_seeds",
    "load_generator",
    "save_generator",
]
