"""Official 2D CIPS generator state dicts (saic-mdal/CIPS: `CIPSskip`, and `CIPSres` of the Landscapes
model) <-> ours, through one key table.

The official layers are 1x1 convolutions on [B, C, H, W] maps; ours are products on [B, H * W, C]
rows, so four tensors change layout (each row names how):

    modfc     [1, out, in, 1, 1]  <->  [in, out]    modulated layers (StyledConv, ToRGB)
    conv      [out, in, 1, 1]     <->  [out, in]    the Fourier-feature layer (and CIPSres's skips)
    leading   [1, *shape]         <->  shape        the coordinate embedding
    rgb_bias  [1, 3, 1, 1]        <->  [3]          the to-RGB biases

The architecture is read from the tensors' shapes (size, widths, mapping depth), so no preset is
needed. The official code reads its embedding with `grid_sample`'s default alignment; converted
models keep it (`Cips2DConfig.embedding_align_corners=False`) and so render the official images.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch

from cips3d.config_2d import Cips2DConfig
from cips3d.convert.official import check_keys
from cips3d.errors import CheckpointError

Layout = Literal["same", "modfc", "conv", "leading", "rgb_bias"]


@dataclass(frozen=True)
class Row2D:
    official: str
    ours: str
    layout: Layout = "same"


def _modulated(official: str, ours: str, styled: bool) -> list[Row2D]:
    """A StyledConv (styled=True: with noise and the activation's bias) or a ToRGB."""
    conv = [
        Row2D(f"{official}.conv.weight", f"{ours}.weight", "modfc"),
        Row2D(f"{official}.conv.modulation.weight", f"{ours}.modulation.weight"),
        Row2D(f"{official}.conv.modulation.bias", f"{ours}.modulation.bias"),
    ]
    if not styled:  # a module's own parameters come before its children's in a state dict
        return [Row2D(f"{official}.bias", f"{ours}.bias", "rgb_bias"), *conv]
    return [
        *conv,
        Row2D(f"{official}.noise.weight", f"{ours}.noise_weight"),
        Row2D(f"{official}.activate.bias", f"{ours}.bias"),
    ]


def _skip_rows(config: Cips2DConfig) -> list[Row2D]:
    """CIPSskip: conv1, then linears 2i and 2i + 1 (pair i), then a to-RGB head per pair."""
    rows = _modulated("conv1", "first", styled=True)
    for i in range(len(config.widths)):
        rows += _modulated(f"linears.{2 * i}", f"pairs.{i}.0", styled=True)
        rows += _modulated(f"linears.{2 * i + 1}", f"pairs.{i}.1", styled=True)
    for i in range(len(config.widths)):
        rows += _modulated(f"to_rgbs.{i}", f"to_rgb.{i}", styled=False)
    return rows


def _residual_rows(config: Cips2DConfig) -> list[Row2D]:
    """CIPSres: linears.0 (the first layer), linears 1 + i (residual pair i: conv1, conv2 and, where the
    width changes, skip.0), then the one head `to_rgb_last`."""
    rows = _modulated("linears.0", "first", styled=True)
    widths_in = (config.first_width, *config.widths[:-1])
    for i, (w_in, w_out) in enumerate(zip(widths_in, config.widths, strict=True)):
        rows += _modulated(f"linears.{i + 1}.conv1", f"pairs.{i}.0", styled=True)
        rows += _modulated(f"linears.{i + 1}.conv2", f"pairs.{i}.1", styled=True)
        if w_in != w_out:
            rows.append(Row2D(f"linears.{i + 1}.skip.0.weight", f"skips.{i}.weight", "conv"))
    return rows + _modulated("to_rgb_last", "to_rgb.0", styled=False)


def key_table_2d(config: Cips2DConfig) -> list[Row2D]:
    """Every official key of a `CIPSskip` (or `CIPSres`) of `config`, in the official registration order."""
    rows = [
        Row2D("lff.ffm.conv.weight", "encoding.fourier_weight", "conv"),
        Row2D("lff.ffm.conv.bias", "encoding.fourier_bias"),
        Row2D("emb.input", "encoding.embedding", "leading"),
    ]
    rows += _residual_rows(config) if config.architecture == "res" else _skip_rows(config)
    for k in range(config.mapping_layers):  # index 0 of the official nn.Sequential is the PixelNorm
        rows += [Row2D(f"style.{k + 1}.{p}", f"mapping.layers.{k}.{p}") for p in ("weight", "bias")]
    return rows


Reshape = Callable[[torch.Tensor], torch.Tensor]
LAYOUTS: dict[Layout, tuple[Reshape, Reshape]] = {
    "same": (lambda t: t, lambda t: t),
    "modfc": (lambda t: t[0, :, :, 0, 0].t(), lambda t: t.t()[None, :, :, None, None]),
    "conv": (lambda t: t[:, :, 0, 0], lambda t: t[:, :, None, None]),
    "leading": (lambda t: t[0], lambda t: t[None]),
    "rgb_bias": (lambda t: t.reshape(-1), lambda t: t.reshape(1, -1, 1, 1)),
}
"""Layout -> (official to ours, ours to official); every result is made contiguous (safetensors)."""


def _to_ours(tensor: torch.Tensor, layout: Layout) -> torch.Tensor:
    return LAYOUTS[layout][0](tensor).contiguous()


def _to_official(tensor: torch.Tensor, layout: Layout) -> torch.Tensor:
    return LAYOUTS[layout][1](tensor).contiguous()


def _official_shape(shape: tuple[int, ...], layout: Layout) -> tuple[int, ...]:
    return tuple(_to_official(torch.empty(shape, device="meta"), layout).shape)


def official_shapes_2d(config: Cips2DConfig, ours: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """Official key -> shape for a model of `config` whose state dict is `ours`."""
    return {
        row.official: _official_shape(tuple(ours[row.ours].shape), row.layout) for row in key_table_2d(config)
    }


def _shape(state: Mapping[str, torch.Tensor], key: str, dims: int) -> tuple[int, ...]:
    tensor = state.get(key)
    if not isinstance(tensor, torch.Tensor) or tensor.dim() != dims:
        raise CheckpointError(f"the 2D CIPS checkpoint has no usable {key!r} (a {dims}-d tensor expected).")
    return tuple(tensor.shape)


def is_official_cips2d(state: Mapping[str, object]) -> bool:
    """Whether a state dict has the official 2D CIPS generator's coordinate embedding and Fourier layer."""
    return "emb.input" in state and "lff.ffm.conv.weight" in state


def holds_official_cips2d(content: Any) -> bool:
    """Whether what a `.pt`/`.pth` file holds is an official 2D CIPS generator or training checkpoint."""
    if not isinstance(content, Mapping):
        return False
    inner = content.get("g_ema", content.get("g"))
    return is_official_cips2d(content) or (isinstance(inner, Mapping) and is_official_cips2d(inner))


def config_from_official_2d(state: Mapping[str, torch.Tensor]) -> Cips2DConfig:
    """The `Cips2DConfig` of an official `CIPSskip` or `CIPSres` state dict, read from its shapes."""
    if any(re.fullmatch(r"(conv1|linears\.\d+|linears\.\d+\.conv[12])\.bias", key) for key in state):
        raise CheckpointError(
            "this CIPS checkpoint uses the 'sin' or 'sinrelu' activation; cips3d implements the released "
            "models' LeakyReLU only."
        )
    fourier, coord_dims, *_ = _shape(state, "lff.ffm.conv.weight", 4)
    if coord_dims != 2:
        raise CheckpointError(f"this CIPS checkpoint reads {coord_dims} coordinates per pixel, not 2 (x, y).")
    _, embedding, rows, cols = _shape(state, "emb.input", 4)
    residual = "to_rgb_last.conv.weight" in state
    if residual:  # CIPSres: linears.0 is the first layer, linears.1... the residual pairs
        first = _shape(state, "linears.0.conv.weight", 5)[1]
        blocks = sorted(
            int(m.group(1)) for k in state if (m := re.fullmatch(r"linears\.(\d+)\.conv1\.conv\.weight", k))
        )
        widths = tuple(_shape(state, f"linears.{i}.conv1.conv.weight", 5)[1] for i in blocks)
    else:
        first = _shape(state, "conv1.conv.weight", 5)[1]
        pairs = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"to_rgbs\.(\d+)\.bias", k)))
        widths = tuple(_shape(state, f"linears.{2 * i}.conv.weight", 5)[1] for i in range(len(pairs)))
    mapping = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"style\.(\d+)\.weight", k)))
    if not mapping or not widths:
        raise CheckpointError("the 2D CIPS checkpoint has no mapping network or no to-RGB layers.")
    return Cips2DConfig(
        size=rows,
        width=None if cols == rows else cols,
        style_dim=_shape(state, "style.1.weight", 2)[0],
        mapping_layers=len(mapping),
        fourier_dim=fourier,
        embedding_dim=embedding,
        first_width=first,
        widths=widths,
        architecture="res" if residual else "skip",
        embedding_align_corners=False,
    )


def from_official_2d(
    official: Mapping[str, torch.Tensor], config: Cips2DConfig, ours_template: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Official `CIPSskip` / `CIPSres` state dict -> ours, after checking every name and shape.

    Args:
        official: the generator's state dict (`g_ema` of an official training checkpoint).
        config: its config (`config_from_official_2d`).
        ours_template: the state dict of a `Generator2D(config)` (for the expected shapes).
    """
    expected = official_shapes_2d(config, ours_template)
    check_keys(official, expected, "the official 2D CIPS generator checkpoint")
    return {row.ours: _to_ours(official[row.official], row.layout) for row in key_table_2d(config)}


def to_official_2d(ours: Mapping[str, torch.Tensor], config: Cips2DConfig) -> dict[str, torch.Tensor]:
    """Our state dict -> the official `CIPSskip` / `CIPSres` one (loadable by the official code's `g_ema`)."""
    return {row.official: _to_official(ours[row.ours], row.layout) for row in key_table_2d(config)}
