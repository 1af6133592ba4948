"""Training configs: one frozen dataclass per stage, the whole run in `TrainConfig`, official presets.

The official FFHQ schedule (spec 4.3) trains four separately launched runs, 32 -> 64 -> 128 -> 256 px,
each started by hand from the previous run's best checkpoint. Here the stages are one declared list
and the trainer moves through them by itself.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from cips3d import constants as K
from cips3d.config import (
    GeneratorConfig,
    PoseConfig,
    RenderConfig,
    generator_preset,
    is_real_number,
    whole_count,
)
from cips3d.errors import ConfigError
from cips3d.models.discriminator import discriminator_preset
from cips3d.seeding import check_seed
from cips3d.training.augment import DiffAugmentConfig

StartFrom = Literal["last", "best"]


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class StageConfig:
    """One stage of the curriculum (one official training run)."""

    name: str
    img_size: int
    """Resolution of G's renders and of the real images in this stage."""
    steps: int
    """Iterations (one D step and one G step each)."""
    batch_size: int
    g_lr: float
    d_lr: float
    aux: bool = True
    """Train with the aux branch: the aux NeRF images go to the aux discriminator every step."""
    diffaug: bool = False
    """DiffAugment (color, translation, cutout) on every discriminator input."""
    fade_steps: int = 0
    """The D input fades in from half resolution over this many steps (0: alpha = 1 throughout)."""
    freeze_nerf: bool = False
    """Keep the NeRF field, its mapping network and the aux head fixed (bit-identical)."""
    nerf_noise_steps: int = 5000
    """Density noise std max(0, 1 - step / nerf_noise_steps) within the stage; 0 disables it."""
    grad_rays: int | None = None
    """Rays per image rendered with gradients in the G step (None: all; official 256^2)."""
    start_from: StartFrom = "last"
    """Which snapshot of the previous stage this stage starts from ('best' as official, or 'last')."""

    def __post_init__(self) -> None:
        _require(bool(self.name) and "/" not in self.name, f"stage name {self.name!r} must be a plain word.")
        for key in ("img_size", "steps", "batch_size"):
            value = getattr(self, key)
            _require(
                isinstance(value, int) and value > 0, f"stage {self.name}: {key} must be > 0, got {value!r}."
            )
        _require(
            self.img_size >= 8, f"stage {self.name}: img_size must be at least 8 (the D works down to 4x4)."
        )
        _require(
            self.img_size & (self.img_size - 1) == 0, f"stage {self.name}: img_size must be a power of 2."
        )
        for key in ("g_lr", "d_lr"):
            value = getattr(self, key)
            _require(
                math.isfinite(value) and value > 0, f"stage {self.name}: {key} must be > 0, got {value}."
            )
        _require(
            self.fade_steps >= 0 and self.nerf_noise_steps >= 0, f"stage {self.name}: steps must be >= 0."
        )
        _require(
            self.start_from in ("last", "best"), f"stage {self.name}: start_from must be 'last' or 'best'."
        )


# TrainConfig fields a resume may change: they decide which files are written, not what is trained.
RESUMABLE = ("snapshot_every", "preview_every", "keep_snapshots")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; saved with every snapshot."""

    generator: GeneratorConfig
    discriminator: dict[str, Any]
    """The discriminator config as `DiscriminatorConfig.to_dict()` (JSON-ready)."""
    stages: tuple[StageConfig, ...]
    pose: PoseConfig = field(default_factory=PoseConfig)
    """Training camera distribution (official: yaw N(pi/2, 0.3), pitch N(pi/2, 0.155))."""
    fov: float = K.FOV_DEGREES
    ray_start: float = K.RAY_START
    ray_end: float = K.RAY_END
    num_steps: int = K.NUM_STEPS
    hierarchical: bool = True
    diffaug_cutout: float = K.DIFFAUG_CUTOUT_RATIO
    """Side of the DiffAugment cutout square over the image side (CIPS-3D 0.2; DiffAugment's own 0.5)."""
    r1_gamma: float = K.R1_GAMMA
    """R1 weight: the penalty is gamma / 2 * |grad D(x)|^2 (official gamma 10)."""
    r1_interval: int = 1
    """Apply R1 every this many D steps, scaled by the interval (lazy R1); official: every step."""
    grad_clip: float = K.D_GRAD_CLIP
    """Total-norm clip of G and D gradients."""
    ema_decay: float = K.EMA_DECAY
    ema_start: int = K.EMA_START
    """G_ema is left untouched for the first steps of every stage (official)."""
    adam_betas: tuple[float, float] = K.ADAM_BETAS
    xflip: bool = True
    """Mirror the real images (doubles the dataset, as official)."""
    seed: int = 1234
    data_seed: int = 0
    snapshot_every: int = 500
    keep_snapshots: int = 3
    """Keep this many most recent snapshots, plus the best one."""
    preview_every: int = 500
    log_every: int = 10
    eval_images: int = 256
    """Images per side for the snapshot score (SWD against the data) that picks the best snapshot."""
    max_bad_steps: int = 10
    """Stop after this many optimiser steps in a row were skipped for non-finite losses or gradients."""

    def __post_init__(self) -> None:
        _require(len(self.stages) > 0, "a training run needs at least one stage.")
        names = [s.name for s in self.stages]
        _require(len(set(names)) == len(names), f"stage names must be unique, got {names}.")
        for key in (
            "r1_interval",
            "snapshot_every",
            "keep_snapshots",
            "preview_every",
            "log_every",
            "max_bad_steps",
            "eval_images",  # 0 trained the whole run, then failed scoring it before its snapshot
        ):
            object.__setattr__(self, key, whole_count(getattr(self, key), key))  # numpy's become int
        for key in ("seed", "data_seed"):
            object.__setattr__(self, key, check_seed(getattr(self, key), key))  # torch wrapped -1
        betas = self.adam_betas
        _require(
            len(betas) == 2 and all(is_real_number(b) and 0 <= b < 1 for b in betas),
            f"adam_betas must be two numbers in [0, 1), got {betas!r}.",
        )
        _require(0 <= self.ema_decay < 1, f"ema_decay must be in [0, 1), got {self.ema_decay}.")
        _require(self.grad_clip > 0 and self.r1_gamma >= 0, "grad_clip must be > 0 and r1_gamma >= 0.")
        object.__setattr__(self, "ema_start", whole_count(self.ema_start, "ema_start", minimum=0))
        # Checked now, not when a stage first renders or augments (its grad_rays after a million steps).
        DiffAugmentConfig(cutout_ratio=self.diffaug_cutout)
        self.stage_render(dataclasses.replace(self.stages[0], grad_rays=None))  # the run's camera and rays
        for stage in self.stages:  # then what each stage adds (its size, its grad_rays)
            try:
                self.stage_render(stage)
            except ConfigError as err:
                raise ConfigError(f"stage {stage.name}: {err}") from None

    def stage_render(self, stage: StageConfig, nerf_noise: float = 0.0) -> RenderConfig:
        """How `stage` renders its G step: the run's camera and ray settings at the stage's size."""
        return RenderConfig(
            img_size=stage.img_size, fov=self.fov, ray_start=self.ray_start, ray_end=self.ray_end,
            num_steps=self.num_steps, hierarchical=self.hierarchical, nerf_noise=nerf_noise,
            grad_rays=stage.grad_rays,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        try:
            values = dict(data)
            values["generator"] = GeneratorConfig.from_dict(values["generator"])
            values["stages"] = tuple(StageConfig(**s) for s in values["stages"])
            values["pose"] = PoseConfig(**values["pose"])
            values["adam_betas"] = tuple(values["adam_betas"])
            return cls(**values)
        except (KeyError, TypeError) as err:
            raise ConfigError(f"training config is malformed ({err}).") from err

    def with_stages(self, stages: tuple[StageConfig, ...]) -> TrainConfig:
        return dataclasses.replace(self, stages=stages)


# --- presets -------------------------------------------------------------------------------------------


def ffhq_stages() -> tuple[StageConfig, ...]:
    """The official FFHQ curriculum (spec 4.3): batch 4 per GPU, best-FID hand-off between stages."""
    return (
        StageConfig("r32", 32, 80_000, 4, 2e-4, 2e-3, start_from="best"),
        StageConfig("r64", 64, 200_000, 4, 2e-4, 2e-3, start_from="best"),
        StageConfig("r128", 128, 800_000, 4, 1e-4, 1e-3, start_from="best"),
        StageConfig(
            "r256", 256, 800_000, 4, 1e-4, 5e-4, aux=False, diffaug=True, fade_steps=10_000,
            freeze_nerf=True, nerf_noise_steps=0, grad_rays=256 * 256, start_from="best",
        ),
    )  # fmt: skip


def tiny_stages() -> tuple[StageConfig, ...]:
    """A CPU schedule for the tiny preset: the official recipe at toy sizes and lengths."""
    return (
        StageConfig("r16", 16, 300, 8, 2e-4, 2e-3, nerf_noise_steps=200),
        StageConfig("r32", 32, 3000, 8, 2e-4, 2e-3, nerf_noise_steps=500),
    )


def finetune_stage(img_size: int = 256, steps: int = 100_000, batch_size: int = 4) -> StageConfig:
    """Official fine-tuning (spec 5.1): NeRF frozen, no aux branch, DiffAugment, lr 1e-4 / 5e-4."""
    return StageConfig(
        "finetune", img_size, steps, batch_size, 1e-4, 5e-4, aux=False, diffaug=True,
        freeze_nerf=True, nerf_noise_steps=0,
    )  # fmt: skip


_TINY_EMA = {"ema_decay": 0.99, "ema_start": 20}


def train_preset(name: str) -> TrainConfig:
    """Named runs: 'ffhq' (official networks and curriculum), 'tiny' (CPU), 'ffhq-finetune',
    'tiny-finetune' (frozen NeRF on a new dataset)."""
    presets = {
        "ffhq": ("ffhq", ffhq_stages, {}),
        # A few thousand CPU steps: the EMA must follow within ~100 steps, not the official ~1000.
        "tiny": ("tiny", tiny_stages, {"snapshot_every": 200, "preview_every": 200, **_TINY_EMA}),
        "ffhq-finetune": ("ffhq", lambda: (finetune_stage(),), {"ema_start": K.EMA_START}),
        "tiny-finetune": (
            "tiny",
            lambda: (finetune_stage(img_size=32, steps=1000, batch_size=8),),
            {"snapshot_every": 200, "preview_every": 200, **_TINY_EMA},
        ),
    }
    if name not in presets:
        raise ConfigError(f"unknown training preset {name!r}; known: {', '.join(sorted(presets))}.")
    network, stages, overrides = presets[name]
    return TrainConfig(
        generator=generator_preset(network),
        discriminator=discriminator_preset(network).to_dict(),
        stages=stages(),
        **overrides,
    )


TRAIN_PRESETS = ("ffhq", "tiny", "ffhq-finetune", "tiny-finetune")


def preset_name(config: TrainConfig) -> str | None:
    """The preset `config` is, up to what `cips3d train` may set beside it (the seed, the batch size of
    the stages, the RESUMABLE fields); None for a config of its own."""

    def comparable(c: TrainConfig) -> str:
        return json.dumps(c.to_dict(), sort_keys=True)

    for name in TRAIN_PRESETS:
        preset = train_preset(name)
        if len(preset.stages) != len(config.stages):
            continue
        pairs = zip(preset.stages, config.stages, strict=True)
        stages = tuple(dataclasses.replace(p, batch_size=s.batch_size) for p, s in pairs)
        same = {key: getattr(config, key) for key in ("seed", *RESUMABLE)}
        if comparable(dataclasses.replace(preset, stages=stages, **same)) == comparable(config):
            return name
    return None
