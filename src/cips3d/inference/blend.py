"""Network interpolation ("layer swapping", spec 5.2): blend INR blocks of a fine-tuned model into its source.

    cartoonish = blend_generators(G_ffhq, G_cartoon, gamma=0.5)   # layers 1024 ... 32 half-way

For every parameter of the INR blocks named in `layers` (and their to-RGB heads),
p = (1 - gamma) p_source + gamma p_target; everything else (the NeRF, both mapping networks, the aux
head, blocks 4, 8, 16) is the source's, as in the official web demo.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from cips3d import constants as K
from cips3d.config import RenderConfig, check_switch, generator_in_words, is_real_number
from cips3d.errors import ConfigError
from cips3d.inference.video import seed_styles
from cips3d.io.images import to_uint8
from cips3d.models.generator3d import Generator3D
from cips3d.rendering.cameras import Camera

DEFAULT_BLEND_LAYERS: tuple[str, ...] = ("1024", "512", "256", "128", "64", "32")
"""The official default `swapped_layers` (configs/web_demo.yaml)."""


def resolve_blend_layers(layers: Iterable[str | int]) -> list[str]:
    """Official INR block names ('1024' or 1024) -> their canonical strings, duplicates dropped.

    Raises ConfigError for a name that is not one of 4, 8, ..., 1024.
    """
    if isinstance(layers, str):  # "1024" was read character by character ("unknown INR layer '1'")
        layers = [part for part in layers.split(",") if part.strip()]
    names = [str(layer).strip() for layer in layers]
    unknown = [n for n in names if n not in K.INR_BLOCK_NAMES]
    if unknown:
        raise ConfigError(f"unknown INR layer {unknown[0]!r}; the layers are {', '.join(K.INR_BLOCK_NAMES)}.")
    return list(dict.fromkeys(names))


def check_gamma(gamma: float) -> float:
    """gamma as a float in [0, 1], else ConfigError."""
    if not (is_real_number(gamma) and math.isfinite(gamma) and 0.0 <= gamma <= 1.0):  # numpy's too
        raise ConfigError(f"the blend gamma must be a number between 0 and 1, got {gamma!r}.")
    return float(gamma)


def _config_differences(source: Generator3D, target: Generator3D, named: int = 3) -> str:
    """'source: the tiny generator, target: a custom generator; nerf.hidden_dim 64 vs 32, ...' (the first
    `named` settings that differ, as source vs target)."""

    def flat(config: dict, prefix: str = "") -> dict[str, object]:
        items: dict[str, object] = {}
        for key, value in config.items():
            items |= flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
        return items

    a, b = flat(source.config.to_dict()), flat(target.config.to_dict())
    differ = [f"{k} {a.get(k)} vs {b.get(k)}" for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
    more = f", and {len(differ) - named} more" if len(differ) > named else ""
    whose = f"source: {generator_in_words(source.config)}, target: {generator_in_words(target.config)}"
    return f"{whose}; {', '.join(differ[:named])}{more}"


def check_same_architecture(source: Generator3D, target: Generator3D) -> None:
    """ConfigError unless both generators have the same config and parameter shapes."""
    for which, model in (("source", source), ("target", target)):
        if not isinstance(model, Generator3D):  # a path: an AttributeError on .config
            raise ConfigError(
                f"the {which} must be a Generator3D (load_generator reads one), got {type(model).__name__}."
            )
    if source.config != target.config:
        differences = _config_differences(source, target)
        raise ConfigError(f"the source and target models have different architectures ({differences}).")
    target_shapes = {k: tuple(v.shape) for k, v in target.state_dict().items()}
    for name, value in source.state_dict().items():
        if target_shapes.get(name) != tuple(value.shape):
            raise ConfigError(f"the source and target models differ in the shape of {name}.")


@torch.no_grad()
def _lerp_parameters(blended: nn.Module, target: nn.Module, gamma: float) -> None:
    """blended.p <- (1 - gamma) blended.p + gamma target.p for every parameter, in place.

    Written as two products so gamma 0 and 1 reproduce the end points bit for bit.
    """
    for (name, p), (tname, q) in zip(blended.named_parameters(), target.named_parameters(), strict=True):
        if name != tname:
            raise ConfigError(f"parameter {name} of the source meets {tname} of the target.")
        p.copy_((1.0 - gamma) * p + gamma * q.to(p))


def blend_generators(
    source: Generator3D,
    target: Generator3D,
    gamma: float,
    layers: Iterable[str | int] = DEFAULT_BLEND_LAYERS,
    blend_inr_mapping: bool = False,
) -> Generator3D:
    """A new generator: the source with the INR blocks `layers` moved `gamma` of the way to the target.

    Args:
        source: the model everything unblended comes from (e.g. the FFHQ generator).
        target: a model of the same architecture (e.g. fine-tuned on cartoons or AFHQ).
        gamma: 0 gives the source, 1 the target's blocks; must lie in [0, 1].
        layers: official INR block names (4, 8, 16, 32, 64, 128, 256, 512, 1024) to blend, each with
            its to-RGB head. The default is the official list, 1024 down to 32.
        blend_inr_mapping: also blend the INR mapping network (the official demo does not), and then
            recompute the truncation mean.

    Returns:
        The blended generator, on the source's device, in eval mode when the source is. The inputs
        are not changed.
    """
    gamma = check_gamma(gamma)
    check_switch(blend_inr_mapping, "blend_inr_mapping")
    names = resolve_blend_layers(layers)
    check_same_architecture(source, target)
    blended = copy.deepcopy(source)
    for name in names:
        i = K.INR_BLOCK_NAMES.index(name)
        _lerp_parameters(blended.decoder.blocks[i], target.decoder.blocks[i], gamma)
        _lerp_parameters(blended.decoder.to_rgb[i], target.decoder.to_rgb[i], gamma)
    if blend_inr_mapping:
        _lerp_parameters(blended.inr_mapping, target.inr_mapping, gamma)
        # The stored mean belongs to the source's mapping; truncation must centre on the blended one.
        blended.update_truncation_mean()
    return blended


@torch.no_grad()
def gamma_sweep_frames(
    source: Generator3D,
    target: Generator3D,
    gammas: Sequence[float],
    seed: int,
    camera: Camera,
    render: RenderConfig,
    *,
    layers: Sequence[str] = DEFAULT_BLEND_LAYERS,
    blend_inr_mapping: bool = False,
    psi: float = 1.0,
) -> Iterator[np.ndarray]:
    """One uint8 frame [H, W, 3] per gamma: `seed` rendered by the blend of `source` and `target`
    (the official "interpolate layers" video, at a fixed camera)."""
    if is_real_number(gammas) or not isinstance(gammas, Iterable):  # 0.5: "'float' object is not iterable"
        raise ConfigError(f"gammas must be a list of blend weights (one frame each), got {gammas!r}.")
    for gamma in gammas:
        blended = blend_generators(source, target, gamma, layers, blend_inr_mapping)
        styles, generator = seed_styles(blended, seed, psi)
        yield to_uint8(blended.synthesis(styles, camera, render, generator=generator).img[0])
