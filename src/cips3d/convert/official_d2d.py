"""Official 2D CIPS discriminator state dicts (StyleGAN2's residual discriminator, the `d` of a CIPS
training checkpoint) <-> our `Discriminator2D`, through one key table. No tensor changes layout.

The official modules are `nn.Sequential`s, so their keys carry indices where ours carry names:

    convs.0.{0,1}              -> from_rgb.{conv,act}       the 1x1 input layer
    convs.{k}.conv2.{0,1,2}    -> blocks.{k-1}.conv2.{blur,conv,act}   (the blur kernel is a buffer on
                                                             both sides)
    final_linear.{0,1}         -> final_linear, out

The configuration (input size, input channels, channel multiplier) is read from the shapes. Official
discriminators with extra first layers (`n_first_layers` > 0) are refused by name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import torch

from cips3d.config_2d import Cips2DDiscriminatorConfig
from cips3d.convert.official import check_keys
from cips3d.convert.official_2d import Row2D
from cips3d.errors import CheckpointError, ConfigError


def _conv_layer(official: str, ours: str, blur: bool, act: bool = True) -> list[Row2D]:
    """A ConvLayer: official [Blur], EqualConv2d, [FusedLeakyReLU] by index; ours blur, conv, act."""
    rows, index = [], 0
    if blur:
        rows.append(Row2D(f"{official}.0.kernel", f"{ours}.blur.kernel"))
        index = 1
    rows.append(Row2D(f"{official}.{index}.weight", f"{ours}.conv.weight"))
    if act:
        rows.append(Row2D(f"{official}.{index + 1}.bias", f"{ours}.act.bias"))
    return rows


def d_key_table_2d(config: Cips2DDiscriminatorConfig) -> list[Row2D]:
    """Every official key of a discriminator of `config`, in the official registration order."""
    rows = _conv_layer("convs.0", "from_rgb", blur=False)
    for i in range(int(math.log2(config.size)) - 2):  # size, size / 2, ..., 8 -> one residual block each
        official, ours = f"convs.{i + 1}", f"blocks.{i}"
        rows += _conv_layer(f"{official}.conv1", f"{ours}.conv1", blur=False)
        rows += _conv_layer(f"{official}.conv2", f"{ours}.conv2", blur=True)
        rows += _conv_layer(f"{official}.skip", f"{ours}.skip", blur=True, act=False)
    rows += _conv_layer("final_conv", "final_conv", blur=False)
    for official, ours in (("final_linear.0", "final_linear"), ("final_linear.1", "out")):
        rows += [Row2D(f"{official}.{p}", f"{ours}.{p}") for p in ("weight", "bias")]
    return rows


def d_config_from_official_2d(state: Mapping[str, torch.Tensor]) -> Cips2DDiscriminatorConfig:
    """The `Cips2DDiscriminatorConfig` of an official 2D CIPS discriminator, read from its shapes."""
    first = state.get("convs.0.0.weight")
    if not isinstance(first, torch.Tensor) or first.dim() != 4:
        raise CheckpointError("the 2D CIPS discriminator checkpoint has no usable 'convs.0.0.weight'.")
    if "convs.1.0.weight" in state:
        raise CheckpointError(
            "this CIPS discriminator has extra first layers (n_first_layers > 0); cips3d does not build them."
        )
    blocks = sum(1 for key in state if re.fullmatch(r"convs\.\d+\.conv1\.0\.weight", key))
    size = 2 ** (blocks + 2)
    widest = max(t.shape[0] for t in state.values() if isinstance(t, torch.Tensor) and t.dim() == 4)
    try:
        return _capped_config(size, int(first.shape[1]), int(first.shape[0]), int(widest))
    except ConfigError as err:
        raise CheckpointError(f"the 2D CIPS discriminator checkpoint does not fit: {err}") from err


def _capped_config(
    size: int, input_channels: int, first_width: int, widest: int
) -> Cips2DDiscriminatorConfig:
    """The config with this first width and widest layer. The layers at 4 and 8 px are 512 wide unless
    capped, so the widest layer is the cap (ours for CPU-sized runs, e.g. 64: once not read, so such a
    D did not fit its own config again); the multiplier is StyleGAN2's 2 unless the first width says
    another."""
    cap = min(widest, 512)
    for multiplier in (2, 1, 4, 3):
        config = Cips2DDiscriminatorConfig(size, multiplier, input_channels, max_channels=cap)
        if config.channels(size) == first_width:
            return config
    raise ConfigError(f"no StyleGAN2 width multiplier gives {first_width} channels at {size} px.")


def from_official_d2d(
    official: Mapping[str, torch.Tensor],
    config: Cips2DDiscriminatorConfig,
    ours_template: Mapping[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Official discriminator state dict -> ours, after checking every name and shape."""
    expected = {row.official: tuple(ours_template[row.ours].shape) for row in d_key_table_2d(config)}
    check_keys(official, expected, "the official 2D CIPS discriminator checkpoint")
    return {row.ours: official[row.official] for row in d_key_table_2d(config)}


def to_official_d2d(
    ours: Mapping[str, torch.Tensor], config: Cips2DDiscriminatorConfig
) -> dict[str, torch.Tensor]:
    """Our discriminator state dict -> the official one."""
    return {row.official: ours[row.ours] for row in d_key_table_2d(config)}
