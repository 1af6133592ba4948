"""Official CIPS-3D discriminator state dicts <-> ours, through one explicit key table (spec 7.3).

Official keys look like `main_disc.convs.64.conv2.down_blur.kernel`; ours are the same paths with the
module names below translated (`main.blocks.64.conv2.blur.kernel`). Tensors keep their layout, and the
4x4 blur kernels are buffers on both sides. The table enumerates the official layout for a config
(160 entries for FFHQ), so a checkpoint with a missing, extra or wrongly shaped entry is reported in one
`CheckpointError` before anything is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from cips3d.convert.official import KeyRow, check_keys
from cips3d.io.checkpoint import read_official_state_dict
from cips3d.models.discriminator import Discriminator, DiscriminatorConfig

MODULE_NAMES = {
    "main_disc": "main",
    "aux_disc": "aux",
    "convs": "blocks",
    "down_blur": "blur",
    "equal_conv": "conv",
    "flrelu": "act",
}
"""Official module name -> ours; every other path segment (resolutions, conv1, weight, ...) is kept."""


def ours_name(official: str) -> str:
    """Translate an official module path or key, e.g. `aux_disc.convs.8` -> `aux.blocks.8`."""
    return ".".join(MODULE_NAMES.get(part, part) for part in official.split("."))


def _row(official: str) -> KeyRow:
    return KeyRow(official, ours_name(official))


def _conv_layer(prefix: str, blur: bool, act: bool = True) -> list[KeyRow]:
    """A ConvLayer: [down_blur.kernel], equal_conv.weight, [flrelu.bias], in registration order."""
    names = ["down_blur.kernel"] * blur + ["equal_conv.weight"] + ["flrelu.bias"] * act
    return [_row(f"{prefix}.{name}") for name in names]


def _sub_table(prefix: str, channels: Mapping[int, int], max_size: int, first_down: bool) -> list[KeyRow]:
    """One `Discriminator_MultiScale`: conv_in (ascending), convs (max_size ... 8), then the head."""
    rows: list[KeyRow] = []
    for res in channels:
        rows += _conv_layer(f"{prefix}.conv_in.{res}", blur=False)
    for res in (2**i for i in range(max_size.bit_length() - 1, 2, -1)):
        block = f"{prefix}.convs.{res}"
        rows += _conv_layer(f"{block}.conv1", blur=first_down)
        rows += _conv_layer(f"{block}.conv2", blur=not first_down)
        rows += _conv_layer(f"{block}.skip", blur=True, act=False)
    rows += _conv_layer(f"{prefix}.final_conv", blur=False)
    for linear in ("space_linear", "out_linear"):
        rows += [_row(f"{prefix}.{linear}.weight"), _row(f"{prefix}.{linear}.bias")]
    return rows


def key_table(config: DiscriminatorConfig) -> list[KeyRow]:
    """All rows, in the official state-dict order (main_disc, then aux_disc)."""
    return [
        *_sub_table("main_disc", config.main_channels, config.max_size, config.main_first_downsample),
        *_sub_table("aux_disc", config.aux_channels, config.max_size, config.aux_first_downsample),
    ]


def official_shapes(
    config: DiscriminatorConfig, ours: Mapping[str, torch.Tensor]
) -> dict[str, tuple[int, ...]]:
    """Official key -> shape for a discriminator of `config` whose state dict is `ours`."""
    return {row.official: tuple(ours[row.ours].shape) for row in key_table(config)}


def from_official_d(
    state: Mapping[str, torch.Tensor], config: DiscriminatorConfig, template: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Official discriminator state dict -> ours. Checks names and shapes first.

    Args:
        state: the official `discriminator.pth` content (keys `main_disc.*`, `aux_disc.*`).
        config: the config the weights belong to.
        template: the state dict of a `Discriminator(config)` (for the expected shapes).
    """
    check_keys(state, official_shapes(config, template), "the official discriminator checkpoint")
    return {row.ours: state[row.official] for row in key_table(config)}


def to_official_d(state: Mapping[str, torch.Tensor], config: DiscriminatorConfig) -> dict[str, torch.Tensor]:
    """Our state dict -> the official one (160 entries for FFHQ, in official order)."""
    return {row.official: state[row.ours] for row in key_table(config)}


def load_official_discriminator(
    path: str | os.PathLike, config: DiscriminatorConfig, device: str | torch.device = "cpu"
) -> Discriminator:
    """A discriminator of `config` holding the weights of an official `.pth` state dict.

    The file is read with `torch.load(weights_only=True)`; an unreadable file or one that does not fit
    `config` raises `CheckpointError` with one sentence.
    """
    state = read_official_state_dict(path)
    D = Discriminator(config, initialize=False)
    D.load_state_dict(from_official_d(state, config, D.state_dict()))
    return D.to(device)
