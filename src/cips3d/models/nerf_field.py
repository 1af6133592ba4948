"""The NeRF field of CIPS-3D (spec 1.4): a small FiLM-sine SIREN from 3-D points to (feature, sigma).

No view direction and no positional encoding: the colour layer sees only the point's features.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from cips3d.config import NerfFieldConfig
from cips3d.errors import ConfigError
from cips3d.models.field_recompute import evaluate_field, evaluate_field_rows, field_with_recompute, one_dtype
from cips3d.nn.film import FiLMSine, FoldedFiLM
from cips3d.nn.init import empty_linear, kaiming_leaky_, linear_default_
from cips3d.nn.transforms import plain_graph_wanted


def nerf_style_names(config: NerfFieldConfig) -> list[str]:
    """Official style names, in order: nerf_w0 ... nerf_w{L-1}, nerf_rgb."""
    return [f"nerf_w{i}" for i in range(config.hidden_layers)] + ["nerf_rgb"]


@dataclass(frozen=True)
class NerfModulation:
    """The field's FiLM layers with a batch of styles folded in (`NerfField.modulate`): computed once
    per render and reused by every chunk of points."""

    hidden: tuple[FoldedFiLM, ...]
    color: FoldedFiLM


class NerfField(nn.Module):
    """points [B, N, 3] + NeRF styles -> (feature [B, N, C], raw sigma [B, N, 1]).

    Points are first scaled by 2 / 0.24 (the official UniformBoxWarp), mapping the +-0.12 box to +-1.
    """

    def __init__(self, config: NerfFieldConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden_dim
        self.hidden = nn.ModuleList(
            FiLMSine(config.in_dim if i == 0 else h, h, config.style_dim) for i in range(config.hidden_layers)
        )
        self.sigma = empty_linear(h, 1)
        self.color = FiLMSine(h, h // 2, config.style_dim)
        self.feature = empty_linear(h // 2, config.feature_dim)
        self.style_names = nerf_style_names(config)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None) -> None:
        """Official order: hidden FiLM layers, sigma (default), colour FiLM, feature (Kaiming)."""
        for layer in self.hidden:
            layer.reset_parameters(generator)
        linear_default_(self.sigma, generator)
        self.color.reset_parameters(generator)
        linear_default_(self.feature, generator)
        kaiming_leaky_(self.feature.weight, generator)

    def modulate(self, styles: Mapping[str, torch.Tensor]) -> NerfModulation:
        """styles {name: [B, D]} -> the FiLM layers with these styles folded in."""
        layers = zip(self.hidden, self.style_names, strict=False)  # style_names ends with nerf_rgb
        hidden = tuple(layer.fold(styles[name]) for layer, name in layers)
        return NerfModulation(hidden, self.color.fold(styles["nerf_rgb"]))

    def forward(
        self, points: torch.Tensor, styles: Mapping[str, torch.Tensor] | NerfModulation
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """points [B, N, 3], styles {name: [B, D]} (or their `modulate` form) -> (feature [B, N, C],
        sigma [B, N, 1])."""
        folded = styles if isinstance(styles, NerfModulation) else self.modulate(styles)
        layers = (*folded.hidden, folded.color)
        # A GPU wants large products, not blocks; no points, or styles for another batch: the plain
        # layers answer (their product refuses a mismatch, which the blocks would index past).
        if (
            points.device.type != "cpu"
            or points.numel() == 0
            or any(layer.weight.shape[0] != points.shape[0] for layer in layers)
        ):
            return self._evaluate(points, folded)
        # Listed on every call, inference included (a few microseconds per chunk of rays): the blocks
        # need one dtype and must step aside for torch.func, autocast, forward AD and hooks.
        tensors = [t for layer in layers for t in layer]
        tensors += [*self.sigma.parameters(), *self.feature.parameters()]
        recorded = torch.is_grad_enabled() and any(t.requires_grad for t in (points, *tensors))
        heads = (self.sigma, self.feature)
        if not one_dtype(points, tensors) or plain_graph_wanted([points, *tensors], heads, saved=recorded):
            return self._evaluate(points, folded)
        if recorded:  # the CPU training pass: blocks, activations recomputed in the backward
            return field_with_recompute(points, folded.hidden, folded.color, self.sigma, self.feature)
        # CPU inference: cache-sized blocks of one image's points (each row is independent).
        sigma, feature = ((head.weight, head.bias) for head in heads)
        return evaluate_field_rows(points, list(layers), sigma, feature)

    @torch.no_grad()
    def fused(
        self, points: torch.Tensor, styles: Mapping[str, torch.Tensor] | NerfModulation, tf32: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward` as one Triton kernel (`cips3d.kernels.field_triton`; CUDA, inference only)."""
        try:
            from cips3d.kernels import field_triton  # noqa: PLC0415 (triton: only when asked for)
        except ImportError as err:
            raise ConfigError(
                f"field_kernel='triton' needs the triton package, which PyTorch's CUDA builds bring ({err})."
            ) from err
        folded = styles if isinstance(styles, NerfModulation) else self.modulate(styles)
        return field_triton.fused_field(points, folded, self.sigma, self.feature, tf32)

    def _evaluate(self, points: torch.Tensor, folded: NerfModulation) -> tuple[torch.Tensor, torch.Tensor]:
        return evaluate_field(points, [*folded.hidden, folded.color], self.sigma, self.feature)
