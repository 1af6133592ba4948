"""The per-pixel INR decoder of CIPS-3D, CIPSNet (spec 1.5).

Nine blocks of two modulated FC layers with LeakyReLU(0.2); blocks from index 4 add their input;
the to-RGB heads of blocks from index 3 are summed; tanh at the end. All nine blocks always run
(the official early exit by image size is never triggered). Every pixel is decoded independently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from cips3d import constants as K
from cips3d.config import InrConfig
from cips3d.errors import ConfigError
from cips3d.models.inr_blocked import decode_rows, inr_block, inr_with_blocked_gradient
from cips3d.nn.init import empty_linear, frequency_init_, linear_default_
from cips3d.nn.modulated import ModulatedLinear
from cips3d.nn.transforms import plain_graph_wanted


def inr_style_names() -> list[str]:
    """Official style names, in order: inr_w4_0, inr_w4_1, inr_w8_0, ..., inr_w1024_1."""
    return [f"inr_w{block}_{i}" for block in K.INR_BLOCK_NAMES for i in (0, 1)]


@dataclass(frozen=True)
class InrModulation:
    """The decoder's per-sample weights for a batch of styles (`InrDecoder.modulate`): computed once
    per render and reused by every chunk of pixels (18 x B x 512 x 512 floats: 75 MB at batch 4)."""

    weights: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    """Per block, the [B, in, out] weights of mod1 and mod2 (bfloat16 for precision 'bf16')."""


class InrBlock(nn.Module):
    """y = lrelu(x @ W1' then @ W2'), plus x when `residual` (spec 1.5, `SinBlock`); W' are the
    modulated weights of mod1 and mod2."""

    def __init__(self, in_dim: int, out_dim: int, style_dim: int, residual: bool) -> None:
        super().__init__()
        self.mod1 = ModulatedLinear(in_dim, out_dim, style_dim)
        self.mod2 = ModulatedLinear(out_dim, out_dim, style_dim)
        self.residual = residual and in_dim == out_dim

    def forward(self, x: torch.Tensor, weight1: torch.Tensor, weight2: torch.Tensor) -> torch.Tensor:
        """x [B, N, in], modulated weights [B, in, out] and [B, out, out] -> [B, N, out]."""
        return inr_block(x, weight1, weight2, self.residual)


class InrDecoder(nn.Module):
    """feature [B, N, C] + INR styles -> rgb [B, N, 3] in [-1, 1]."""

    def __init__(self, config: InrConfig, input_dim: int) -> None:
        super().__init__()
        self.config = config
        h = config.hidden_dim
        n = len(K.INR_BLOCK_NAMES)
        self.blocks = nn.ModuleList(
            InrBlock(input_dim if i == 0 else h, h, config.style_dim, residual=i >= K.INR_RESIDUAL_FROM_BLOCK)
            for i in range(n)
        )
        # Heads 0-2 are never used (as in the official model) but kept so official weights round-trip.
        self.to_rgb = nn.ModuleList(empty_linear(h, 3) for _ in range(n))
        self.rgb_from_block = K.INR_RGB_FROM_BLOCK
        names = inr_style_names()
        self.style_pairs = [(names[2 * i], names[2 * i + 1]) for i in range(n)]

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None) -> None:
        """Official order: per block mod1, mod2, its to-RGB (default); then every to-RGB weight is
        re-drawn with frequency init 100."""
        for block, head in zip(self.blocks, self.to_rgb, strict=True):
            block.mod1.reset_parameters(generator)
            block.mod2.reset_parameters(generator)
            linear_default_(head, generator)
        for head in self.to_rgb:
            frequency_init_(head.weight, K.TO_RGB_FREQUENCY_INIT, generator)

    def modulate(self, styles: Mapping[str, torch.Tensor], precision: str = "float32") -> InrModulation:
        """styles {name: [B, D]} -> the per-sample weights of every modulated layer, modulated and
        demodulated in float32 (then rounded to bfloat16 once for precision 'bf16')."""
        weights = []
        for block, (s0, s1) in zip(self.blocks, self.style_pairs, strict=True):
            pair = (block.mod1.modulated_weight(styles[s0]), block.mod2.modulated_weight(styles[s1]))
            weights.append(tuple(w.to(torch.bfloat16) for w in pair) if precision == "bf16" else pair)
        return InrModulation(tuple(weights))

    def forward(
        self,
        feature: torch.Tensor,
        styles: Mapping[str, torch.Tensor] | InrModulation,
        precision: str = "float32",
        kernel: str = "torch",
    ) -> torch.Tensor:
        """feature [B, N, C], styles {name: [B, D]} or their `modulate` form -> rgb [B, N, 3].

        precision 'bf16' runs the modulated layers in bfloat16 (autocast; the to-RGB sum and the tanh
        stay float32); 'tf32' is float32 here (the caller enables TF32, see `tf32_matmuls`). Pass a
        modulation made with the same precision. kernel 'triton' (CUDA, no autograd) runs each
        modulated layer as one Triton product with its activation and residual fused
        (`cips3d.kernels.inr_triton`). On the CPU, in float32 or float64, the blocks run over one
        image's rows at a time, in training with their gradient written out (`models.inr_blocked`).
        """
        modulation = styles if isinstance(styles, InrModulation) else self.modulate(styles, precision)
        decode = self._row_decoder(feature, modulation) if kernel == "torch" and precision != "bf16" else None
        if decode is not None:  # on the CPU: one image's block of pixels at a time (`models.inr_blocked`)
            heads = [(head.weight, head.bias) for head in self.to_rgb[self.rgb_from_block :]]
            residual = [block.residual for block in self.blocks]
            return torch.tanh(decode(feature, modulation.weights, residual, heads))
        blocks = self._fused_blocks(precision) if kernel == "triton" and not torch.is_grad_enabled() else None
        x, rgb = feature, None
        layers = zip(self.blocks, self.to_rgb, modulation.weights, strict=True)
        # No autocast weight cache: it is not allowed inside CUDA graph capture, and the only weights
        # cast here are the small to-RGB heads (the modulated weights are bfloat16 already).
        bf16 = precision == "bf16"
        # cuBLAS has only a slow unaligned kernel for a bfloat16 product 3 columns wide (1.7 ms of a
        # 512 px frame on an H100): on a GPU the heads are padded to 8 outputs, the extra ones unused.
        pad = bf16 and feature.device.type == "cuda"
        total = torch.promote_types(feature.dtype, torch.float32)  # the to-RGB sum: float32, or float64
        with torch.autocast(feature.device.type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=False):
            for i, (block, head, (w1, w2)) in enumerate(layers):
                x = blocks(block, x, w1, w2) if blocks else block(x, w1, w2)
                if i >= self.rgb_from_block:
                    out = _padded_head(head, x) if pad else head(x)
                    rgb = out.to(total) if rgb is None else out.to(total) + rgb
        return torch.tanh(rgb)

    def _row_decoder(self, feature: torch.Tensor, modulation: InrModulation) -> Callable | None:
        """How to decode in blocks of one image's rows (`models.inr_blocked`): `inr_with_blocked_gradient`
        when autograd records a gradient reaching block 0 (the feature's, or the first block's styles'),
        `decode_rows` when it records nothing; None for the batched layers: off the CPU, for dtypes other
        than float32 and float64 throughout, with no pixels or a modulation of another batch, for a
        gradient that stops higher up (autograd keeps only what it needs then), and where the blocks may
        not stand in for the layers (`plain_graph_wanted`)."""
        if feature.device.type != "cpu" or feature.numel() == 0 or self.rgb_from_block >= len(self.blocks):
            return None
        heads = self.to_rgb[self.rgb_from_block :]
        weights = [w for pair in modulation.weights for w in pair]
        if any(w.ndim != 3 or w.shape[0] != feature.shape[0] for w in weights):
            return None  # the batched layers say what is wrong
        tensors = [feature, *weights, *(t for head in heads for t in (head.weight, head.bias))]
        if feature.dtype not in (torch.float32, torch.float64) or any(
            t.dtype != feature.dtype for t in tensors
        ):
            return None
        recorded = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
        if recorded and not any(t.requires_grad for t in (feature, *modulation.weights[0])):
            return None
        if plain_graph_wanted(tensors, [*self.blocks, *heads], saved=recorded):
            return None
        return inr_with_blocked_gradient if recorded else decode_rows

    @staticmethod
    def _fused_blocks(precision: str):
        """The block function of kernel 'triton': both layers through `inr_triton.modulated_fc`."""
        try:
            from cips3d.kernels import inr_triton  # noqa: PLC0415 (triton: only when asked for)
        except ImportError as err:
            raise ConfigError(
                f"inr_kernel='triton' needs the triton package, which PyTorch's CUDA builds bring ({err})."
            ) from err
        tf32 = precision == "tf32"

        def run(block: InrBlock, x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
            y = inr_triton.modulated_fc(x, w1, tf32=tf32)
            return inr_triton.modulated_fc(y, w2, residual=x if block.residual else None, tf32=tf32)

        return run


RGB_PADDED_WIDTH = 8  # 16-byte rows of bfloat16: the aligned cuBLAS kernels


def _padded_head(head: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """head(x) [..., 3] through a zero-padded [8, hidden] weight (see `InrDecoder.forward`)."""
    extra = RGB_PADDED_WIDTH - head.out_features
    out = F.linear(x, F.pad(head.weight, (0, 0, 0, extra)), F.pad(head.bias, (0, extra)))
    return out[..., : head.out_features]
