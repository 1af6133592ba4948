"""cips3d: CIPS-3D, the 3D-aware GAN, in plain PyTorch.

Public API:
    Generator3D, GeneratorOutput       the generator and what it returns
    Discriminator, DiscriminatorConfig the main + aux discriminators (training)
    GeneratorConfig, RenderConfig, PoseConfig, generator_preset
    Camera, RenderDraws                explicit cameras and injected random numbers
    load_generator, save_generator     our checkpoints (safetensors + config.json) and official .pth files
"""

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
from cips3d.models.discriminator import Discriminator, DiscriminatorConfig, discriminator_preset
from cips3d.models.generator3d import Generator3D
from cips3d.outputs import GeneratorOutput, Styles
from cips3d.rendering.cameras import Camera
from cips3d.rendering.volume import RenderDraws
from cips3d.seeding import generators_for_seeds

__version__ = "0.1.0"

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
]
