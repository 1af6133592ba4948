"""The NeRF field's gradient on the CPU, over cache-sized blocks of points with the activations recomputed.

Autograd keeps every FiLM layer's pre-activation and output ([B, N, 128] each: 25 MB at the training
step's 4 x 12,288 points) and walks them in memory-bound passes: the sine's derivative and its product
with the gradient cost 4-8 ms each there, against about 1 ms on a block that stays in cache. Here the
forward keeps only its inputs (points and weights); the backward evaluates each block of 2,048 points
again (a third more products) and takes its gradients while the block is in cache. On a 2-core CPU a
64 px training iteration at batch 4 went from 11.1 to 9.3 s and its peak memory from 2.6 to 1.6 GB
(benchmarks/RESULTS.md); the field's activations are never stored.

The math is `NerfField._evaluate`'s: x = points * 2 / 0.24; x = sin(x @ W_l + b_l) for each hidden
layer; sigma = x @ Ws^T + bs; feature = sin(x @ Wc + bc) @ Wf^T + bf, with the per-image folded FiLM
weights W [B, in, out] and biases b [B, 1, out].
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from cips3d import constants as K
from cips3d.nn.film import FoldedFiLM


def block_slices(points: int, batch: int) -> Iterator[slice]:
    """The rows of each image in one block: `FIELD_BLOCK_ROWS` points over the whole batch."""
    per_image = max(1, K.FIELD_BLOCK_ROWS // batch)
    for start in range(0, points, per_image):
        yield slice(start, start + per_image)


def field_with_recompute(
    points: torch.Tensor,
    hidden: Sequence[FoldedFiLM],
    color: FoldedFiLM,
    sigma: nn.Linear,
    feature: nn.Linear,
) -> tuple[torch.Tensor, torch.Tensor]:
    """points [B, N, 3] -> (feature [B, N, C], sigma [B, N, 1]), differentiable in every weight and in
    the points; not differentiable twice."""
    folded = [t for layer in (*hidden, color) for t in (layer.weight, layer.bias)]
    return _RecomputedField.apply(points, sigma.weight, sigma.bias, feature.weight, feature.bias, *folded)


def _layers(folded: Sequence[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(W0, b0, W1, b1, ..., Wc, bc) -> [(W0, b0), ..., (Wc, bc)]."""
    return [(folded[i], folded[i + 1]) for i in range(0, len(folded), 2)]


class _RecomputedField(torch.autograd.Function):
    """Inputs: points, sigma weight [1, H] and bias [1], feature weight [C, H/2] and bias [C], then each
    folded FiLM layer's weight and bias (the hidden ones, the colour one last)."""

    @staticmethod
    def forward(ctx, points, sigma_w, sigma_b, feature_w, feature_b, *folded):
        ctx.save_for_backward(points, sigma_w, sigma_b, feature_w, feature_b, *folded)
        layers = _layers(folded)
        batch, n, _ = points.shape
        feature = points.new_empty(batch, n, feature_w.shape[0])
        sigma = points.new_empty(batch, n, 1)
        for rows in block_slices(n, batch):
            x = points[:, rows] * (2.0 / K.BOX_WARP_SIDE)
            for w, b in layers[:-1]:
                x = torch.baddbmm(b, x, w).sin_()
            sigma[:, rows] = F.linear(x, sigma_w, sigma_b)
            w, b = layers[-1]
            feature[:, rows] = F.linear(torch.baddbmm(b, x, w).sin_(), feature_w, feature_b)
        return feature, sigma

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_feature: torch.Tensor, grad_sigma: torch.Tensor):
        points, sigma_w, sigma_b, feature_w, feature_b, *folded = ctx.saved_tensors
        with torch.autocast(points.device.type, enabled=False):
            grads = _Gradients(points, sigma_w, sigma_b, feature_w, feature_b, _layers(folded))
            for rows in block_slices(points.shape[1], points.shape[0]):
                grads.add_block(rows, grad_feature[:, rows], grad_sigma[:, rows], ctx.needs_input_grad[0])
        return grads.results()


class _Gradients:
    """The backward's accumulators, filled block by block."""

    def __init__(self, points, sigma_w, sigma_b, feature_w, feature_b, layers) -> None:
        self.points, self.layers = points, layers
        self.sigma_w, self.feature_w = sigma_w, feature_w
        self.heads = [torch.zeros_like(t) for t in (sigma_w, sigma_b, feature_w, feature_b)]
        self.folded = [torch.zeros_like(t) for layer in layers for t in layer]
        self.points_grad = None

    def add_block(
        self, rows: slice, g_feature: torch.Tensor, g_sigma: torch.Tensor, for_points: bool
    ) -> None:
        """Recompute one block's activations and add its gradients (g_*: [B, n, C] and [B, n, 1])."""
        scale = 2.0 / K.BOX_WARP_SIDE
        inputs, pre = [self.points[:, rows] * scale], []
        for w, b in self.layers:
            pre.append(torch.baddbmm(b, inputs[-1], w))
            if len(pre) < len(self.layers):  # the colour layer's output is its own, not the next input
                inputs.append(torch.sin(pre[-1]))
        hidden_out = inputs.pop()  # the last hidden layer's output feeds sigma and the colour layer
        color_out = torch.sin(pre[-1])
        g_sw, g_sb, g_fw, g_fb = self.heads
        _add_head(g_fw, g_fb, g_feature, color_out)
        _add_head(g_sw, g_sb, g_sigma, hidden_out)
        g = torch.matmul(g_feature, self.feature_w).mul_(torch.cos_(pre[-1]))  # at the colour layer's input
        self._add_layer(len(self.layers) - 1, hidden_out, g)
        g = torch.baddbmm(torch.matmul(g_sigma, self.sigma_w), g, self.layers[-1][0].transpose(1, 2))
        for i in range(len(self.layers) - 2, -1, -1):
            g.mul_(torch.cos_(pre[i]))
            self._add_layer(i, inputs[i], g)
            if i > 0 or for_points:
                g = torch.bmm(g, self.layers[i][0].transpose(1, 2))
        if for_points:
            if self.points_grad is None:
                self.points_grad = torch.zeros_like(self.points)
            self.points_grad[:, rows] = g * scale

    def _add_layer(self, i: int, x: torch.Tensor, g: torch.Tensor) -> None:
        """Layer i's weight and bias gradients from its input x [B, n, in] and pre-activation gradient g."""
        self.folded[2 * i].baddbmm_(x.transpose(1, 2), g)
        self.folded[2 * i + 1].add_(g.sum(dim=1, keepdim=True))

    def results(self) -> tuple[torch.Tensor | None, ...]:
        return (self.points_grad, *self.heads, *self.folded)


def _add_head(g_weight: torch.Tensor, g_bias: torch.Tensor, g_out: torch.Tensor, x: torch.Tensor) -> None:
    """A plain linear head y = x @ W^T + b: W and b gradients from g_out [B, n, out] and x [B, n, in]."""
    g_flat = g_out.reshape(-1, g_out.shape[-1])
    g_weight.addmm_(g_flat.t(), x.reshape(-1, x.shape[-1]))
    g_bias.add_(g_flat.sum(dim=0))
