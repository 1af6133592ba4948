"""Official CIPS-3D generator state dicts <-> ours, through one explicit key table (spec 7.1-7.2).

Every official key has exactly one row: (official name, our name, how the tensor changes). The only
change of layout is the modulated-FC weight, stored [1, in, out] officially and [in, out] here.
Our truncation-mean buffers have no official counterpart; they are recomputed after loading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from cips3d import constants as K
from cips3d.config import GeneratorConfig
from cips3d.errors import CheckpointError
from cips3d.words import counted

OURS_ONLY = ("truncation_mean_nerf", "truncation_mean_inr")
"""Our buffers that official checkpoints do not have."""


@dataclass(frozen=True)
class KeyRow:
    official: str
    ours: str
    modfc_weight: bool = False  # official [1, in, out] <-> ours [in, out]


def _linear(official: str, ours: str) -> list[KeyRow]:
    return [KeyRow(f"{official}.{p}", f"{ours}.{p}") for p in ("weight", "bias")]


def _film(official: str, ours: str) -> list[KeyRow]:
    pairs = (("linear", "linear"), ("gain_fc", "frequency"), ("bias_fc", "phase"))
    return [row for off, our in pairs for row in _linear(f"{official}.{off}", f"{ours}.{our}")]


def _mapping(official: str, ours: str, config) -> list[KeyRow]:
    """Official nn.Sequential indices: [Linear, (LayerNorm), LeakyReLU] per hidden layer."""
    step = 3 if config.layer_norm else 2
    rows = []
    for i in range(config.num_layers):
        rows += _linear(f"{official}.base_net.{i * step}", f"{ours}.layers.{i}.linear")
        last = i == config.num_layers - 1
        if config.norm_out if last else config.layer_norm:
            rows += _linear(f"{official}.base_net.{i * step + 1}", f"{ours}.layers.{i}.norm")
    return rows


def _modfc(official: str, ours: str) -> list[KeyRow]:
    return [
        KeyRow(f"{official}.weight", f"{ours}.weight", modfc_weight=True),
        *_linear(f"{official}.modulation", f"{ours}.modulation"),
        *_linear(f"{official}.norm", f"{ours}.norm"),  # never applied; kept for round trips
    ]


def key_table(config: GeneratorConfig) -> list[KeyRow]:
    """All rows, in the official registration order."""
    rows: list[KeyRow] = []
    for i in range(config.nerf.hidden_layers):
        rows += _film(f"siren.network.{i}", f"field.hidden.{i}")
    rows += _linear("siren.final_layer", "field.sigma")
    rows += _film("siren.color_layer_sine", "field.color")
    rows += _linear("siren.color_layer_linear.0", "field.feature")
    rows += _mapping("mapping_network_nerf", "nerf_mapping", config.nerf_mapping)
    for j, name in enumerate(K.INR_BLOCK_NAMES):
        for mod in ("mod1", "mod2"):
            rows += _modfc(f"inr_net.network.{name}.{mod}", f"decoder.blocks.{j}.{mod}")
    for j, name in enumerate(K.INR_BLOCK_NAMES):
        rows += _linear(f"inr_net.to_rgbs.{name}.linear", f"decoder.to_rgb.{j}")
    rows += _mapping("mapping_network_inr", "inr_mapping", config.inr_mapping)
    rows += _linear("aux_to_rbg.0", "aux_head")
    return rows


def _official_shape(row: KeyRow, ours_shape: torch.Size) -> tuple[int, ...]:
    return (1, *ours_shape) if row.modfc_weight else tuple(ours_shape)


def _listing(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_keys(state: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], what: str) -> None:
    """Raise one `CheckpointError` naming the missing, unexpected and wrongly shaped keys, if any."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {expected[k]})"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k])
    ]
    problems = []
    if missing:
        problems.append(f"missing {counted(len(missing), 'key')} ({_listing(missing)})")
    if unexpected:
        problems.append(f"{counted(len(unexpected), 'unexpected key')} ({_listing(unexpected)})")
    if wrong:
        problems.append(f"{len(wrong)} wrongly shaped ({_listing(wrong, 4)})")
    if problems:
        raise CheckpointError(f"{what} does not match the model: " + "; ".join(problems) + ".")


def official_shapes(config: GeneratorConfig, ours: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """Official key -> shape for a model of `config` whose state dict is `ours`."""
    return {row.official: _official_shape(row, ours[row.ours].shape) for row in key_table(config)}


def from_official(
    official: Mapping[str, torch.Tensor], config: GeneratorConfig, ours_template: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Official state dict -> ours (without the truncation buffers). Checks names and shapes first.

    Args:
        official: the official `generator.pth` / `G_ema.pth` content.
        config: the config the weights belong to.
        ours_template: the state dict of a model built from `config` (for the expected shapes).
    """
    if len(set(official) & set(ours_template)) > len(ours_template) // 2:  # was "missing 172 keys ..."
        raise CheckpointError(
            "this file holds a cips3d state dict (G.state_dict()), not official weights: load it with "
            "G.load_state_dict(torch.load(path)), or save models with save_generator(G, folder)."
        )
    check_keys(official, official_shapes(config, ours_template), "the official generator checkpoint")
    out = {}
    for row in key_table(config):
        tensor = official[row.official]
        out[row.ours] = tensor[0] if row.modfc_weight else tensor
    return out


def to_official(ours: Mapping[str, torch.Tensor], config: GeneratorConfig) -> dict[str, torch.Tensor]:
    """Our state dict -> the official one (172 keys for FFHQ, in official order)."""
    return {
        row.official: ours[row.ours].unsqueeze(0) if row.modfc_weight else ours[row.ours]
        for row in key_table(config)
    }
