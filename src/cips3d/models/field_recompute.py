"""The NeRF field's gradient on the CPU, over cache-sized blocks of points with the activations recomputed.

Autograd keeps every FiLM layer's pre-activation and output ([B, N, 128] each: 25 MB at the training
step's 4 x 12,288 points) and walks them in memory-bound passes, each a fresh 25 MB buffer: the sine's
derivative and its product with the gradient cost several times what they cost on a block that stays
in cache (1.2 ms for a [4, 12288, 128] sine on buffers the allocator reuses). Here the
forward keeps only its inputs (points and weights) and runs as inference does (`evaluate_field_rows`:
one image's block of rows at a time); the backward evaluates each block of 2,048 points of the batch
again (a third more products) and takes its gradients while the block is in cache. On a 2-core CPU a
64 px training iteration at batch 4 went from 11.1 to 9.3 s and its peak memory from 2.6 to 1.6 GB
(benchmarks/RESULTS.md); the field's activations are never stored. The backward's accumulators are
row-major and per image for the heads (see `_Gradients`): on a 2-core Xeon, forward and backward of
4 x 12,288 points 64 -> 57 ms.

A backward that builds a graph itself (`create_graph=True`: a Hessian, a penalty on gradients such as
an eikonal term) or runs over batched gradients (`is_grads_batched`) goes through autograd's own graph
of the same evaluation instead, so second derivatives are right.

The math is `NerfField._evaluate`'s: x = points * 2 / 0.24; x = sin(x @ W_l + b_l) for each hidden
layer; sigma = x @ Ws^T + bs; feature = sin(x @ Wc + bc) @ Wf^T + bf, with the per-image folded FiLM
weights W [B, in, out] and biases b [B, 1, out].
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from cips3d import constants as K
from cips3d.nn.film import FoldedFiLM, film_sine
from cips3d.nn.transforms import batched_gradients, graph_gradients

Head = Callable[[torch.Tensor], torch.Tensor]  # a linear head: the module, or F.linear on its tensors


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
    the points (the heads' weights are read directly: their module hooks do not run). Every tensor has
    the points' dtype (`one_dtype`)."""
    folded = [t for layer in (*hidden, color) for t in (layer.weight, layer.bias)]
    return _RecomputedField.apply(points, sigma.weight, sigma.bias, feature.weight, feature.bias, *folded)


def evaluate_field(
    points: torch.Tensor, layers: Sequence[FoldedFiLM], sigma: Head, feature: Head
) -> tuple[torch.Tensor, torch.Tensor]:
    """points [B, n, 3], the folded FiLM layers (hidden ones, then colour), the two linear heads ->
    (feature [B, n, C], sigma [B, n, 1]): the field's math."""
    x = points * K.POINT_SCALE
    for layer in layers[:-1]:
        x = film_sine(x, layer)
    return feature(film_sine(x, layers[-1])), sigma(x)


def evaluate_field_rows(
    points: torch.Tensor,
    layers: Sequence[FoldedFiLM],
    sigma: Sequence[torch.Tensor],
    feature: Sequence[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """`evaluate_field` with nothing recorded, one image's `K.FIELD_BLOCK_ROWS` points at a time: points
    [B, N, 3], the folded layers, the heads' (weight, bias) -> (feature [B, N, C], sigma [B, N, 1]).

    Each product writes into one of two buffers of a block's size and the heads into the outputs'
    rows (an image's rows are one matrix: no strided slices to copy, no concatenation), the bias added
    inside the product; the same numbers as the batched layers (bitwise with MKL here). Measured on a
    2-core Xeon (in one process): 4 x 12,288 points 14.5 -> 13.4 ms, 1 x 49,152 points 15.0 -> 13.2 ms.
    Every tensor has the points' dtype and the points' batch (`NerfField.forward` checks both)."""
    batch, n, _ = points.shape
    rows = max(1, min(n, K.FIELD_BLOCK_ROWS))
    width = layers[0].weight.shape[-1]
    buffers = [points.new_empty(rows, width) for _ in range(2)]
    color_buffer = points.new_empty(rows, layers[-1].weight.shape[-1])
    feature_out = points.new_empty(batch, n, feature[0].shape[0])
    sigma_out = points.new_empty(batch, n, sigma[0].shape[0])
    for b in range(batch):
        image = [(layer.weight[b], layer.bias[b, 0]) for layer in layers]
        for start in range(0, n, rows):
            block = slice(start, start + rows)
            x = points[b, block] * K.POINT_SCALE
            for i, (weight, bias) in enumerate(image[:-1]):
                x = torch.addmm(bias, x, weight, out=buffers[i % 2][: x.shape[0]]).sin_()
            weight, bias = image[-1]
            color = torch.addmm(bias, x, weight, out=color_buffer[: x.shape[0]]).sin_()
            torch.addmm(feature[1], color, feature[0].t(), out=feature_out[b, block])
            torch.addmm(sigma[1], x, sigma[0].t(), out=sigma_out[b, block])
    return feature_out, sigma_out


def one_dtype(points: torch.Tensor, tensors: Sequence[torch.Tensor]) -> bool:
    """Whether the points are floating point and every tensor has their dtype (products with `out=`
    take no other)."""
    return points.is_floating_point() and all(t.dtype == points.dtype for t in tensors)


def _linear(weight: torch.Tensor, bias: torch.Tensor) -> Head:
    return lambda x: F.linear(x, weight, bias)


def _layers(folded: Sequence[torch.Tensor]) -> list[FoldedFiLM]:
    """(W0, b0, W1, b1, ..., Wc, bc) -> [FoldedFiLM(W0, b0), ..., FoldedFiLM(Wc, bc)]."""
    return [FoldedFiLM(folded[i], folded[i + 1]) for i in range(0, len(folded), 2)]


class _RecomputedField(torch.autograd.Function):
    """Inputs: points, sigma weight [1, H] and bias [1], feature weight [C, H/2] and bias [C], then each
    folded FiLM layer's weight and bias (the hidden ones, the colour one last)."""

    @staticmethod
    def forward(ctx, points, sigma_w, sigma_b, feature_w, feature_b, *folded):
        ctx.save_for_backward(points, sigma_w, sigma_b, feature_w, feature_b, *folded)
        ctx.set_materialize_grads(False)  # an output no loss uses gives its weights no gradient, as autograd
        return evaluate_field_rows(points, _layers(folded), (sigma_w, sigma_b), (feature_w, feature_b))

    @staticmethod
    def backward(ctx, grad_feature: torch.Tensor | None, grad_sigma: torch.Tensor | None):
        points, *weights = ctx.saved_tensors
        if grad_feature is None and grad_sigma is None:
            return (None,) * len(ctx.needs_input_grad)
        if torch.is_grad_enabled() or batched_gradients(grad_feature, grad_sigma):
            return _autograd_backward(ctx, (points, *weights), grad_feature, grad_sigma)
        with torch.autocast(points.device.type, enabled=False):
            grads = _Gradients(points, weights, ctx.needs_input_grad[0], grad_feature, grad_sigma)
            for rows in block_slices(points.shape[1], points.shape[0]):
                grads.add_block(rows)
        return grads.results()


def _autograd_backward(ctx, inputs, grad_feature, grad_sigma) -> tuple[torch.Tensor | None, ...]:
    """The gradients through autograd's own graph of the whole evaluation (differentiable again), from
    the saved inputs (unpacked once: non-reentrant checkpointing allows no more)."""
    points, *weights = inputs
    with torch.enable_grad():
        heads = (_linear(*weights[:2]), _linear(*weights[2:4]))
        feature, sigma = evaluate_field(points, _layers(weights[4:]), *heads)
    pairs = [(out, g) for out, g in ((feature, grad_feature), (sigma, grad_sigma)) if g is not None]
    outputs, upstream = [out for out, _ in pairs], [g for _, g in pairs]
    return tuple(graph_gradients(outputs, upstream, inputs, ctx.needs_input_grad))


class _Gradients:
    """The backward's accumulators, filled block by block; None for what no used output depends on."""

    def __init__(self, points, weights, for_points: bool, g_feature, g_sigma) -> None:
        sigma_w, sigma_b, feature_w, feature_b, *folded = weights
        self.points, self.layers = points, _layers(folded)
        self.sigma_w, self.feature_w = sigma_w, feature_w
        self.g_feature, self.g_sigma = g_feature, g_sigma
        batch = points.shape[0]
        self.sigma_heads = _head_accumulators(sigma_w, batch) if g_sigma is not None else None
        self.feature_heads = _head_accumulators(feature_w, batch) if g_feature is not None else None
        used = len(self.layers) if g_feature is not None else len(self.layers) - 1  # the colour layer
        # Row-major accumulators whatever the folded weights' layout (W^T * gamma keeps the transposed
        # one): MKL adds a product into a column-major [B, in, out] 1.3-10x slower (9 -> 84 us for the
        # first layer's [4, 3, 128] at 512 rows per image).
        self.folded = [[t.new_zeros(t.shape) for t in layer] for layer in self.layers[:used]]
        self.points_grad = torch.zeros_like(points) if for_points else None
        self.scaled = points * K.POINT_SCALE  # once: per block, a strided slice's product cost 37 us

    def add_block(self, rows: slice) -> None:
        """Recompute one block's activations and add its gradients."""
        inputs, pre = [self.scaled[:, rows]], []
        for layer in self.layers[:-1]:
            pre.append(torch.baddbmm(layer.bias, inputs[-1], layer.weight))
            inputs.append(torch.sin(pre[-1]))
        hidden_out = inputs.pop()  # the last hidden layer's output: sigma's and the colour layer's input
        g = None  # the gradient at hidden_out
        g_sigma = None if self.g_sigma is None else self.g_sigma[:, rows]
        if g_sigma is not None:
            _add_head(self.sigma_heads, g_sigma, hidden_out)
        if self.g_feature is not None:
            color = self.layers[-1]
            pre_color = torch.baddbmm(color.bias, hidden_out, color.weight)
            g_feature = self.g_feature[:, rows]
            _add_head(self.feature_heads, g_feature, torch.sin(pre_color))
            g_color = torch.matmul(g_feature, self.feature_w).mul_(torch.cos_(pre_color))
            self._add_layer(len(self.layers) - 1, hidden_out, g_color)
            g = torch.bmm(g_color, color.weight.transpose(1, 2))
        if g_sigma is not None:  # sigma's head (one output: [B, n, 1] * [1, H]): g += g_sigma sigma_w
            g = g_sigma * self.sigma_w if g is None else g.addcmul_(g_sigma, self.sigma_w)
        for i in range(len(self.layers) - 2, -1, -1):
            g.mul_(torch.cos_(pre[i]))
            self._add_layer(i, inputs[i], g)
            if i > 0 or self.points_grad is not None:
                g = torch.bmm(g, self.layers[i].weight.transpose(1, 2))
        if self.points_grad is not None:
            self.points_grad[:, rows] = g * K.POINT_SCALE

    def _add_layer(self, i: int, x: torch.Tensor, g: torch.Tensor) -> None:
        """Layer i's weight and bias gradients from its input x [B, n, in] and pre-activation gradient g."""
        self.folded[i][0].baddbmm_(x.transpose(1, 2), g)
        self.folded[i][1].add_(g.sum(dim=1, keepdim=True))

    def results(self) -> tuple[torch.Tensor | None, ...]:
        folded = [g for layer in self.folded for g in layer]
        folded += [None] * (2 * len(self.layers) - len(folded))
        sigma = [g.sum(dim=0) for g in self.sigma_heads] if self.sigma_heads else [None, None]
        feature = [g.sum(dim=0) for g in self.feature_heads] if self.feature_heads else [None, None]
        return (self.points_grad, *sigma, *feature, *folded)


def _head_accumulators(weight: torch.Tensor, batch: int) -> list[torch.Tensor]:
    """Per-image accumulators of a linear head's weight [B, out, in] and bias [B, out] gradients, summed
    over the images at the end (`results`): a block's rows of the batch are not one matrix (the
    gradient's slice is strided), so flattening them copied it (f.head 125 -> 74 us per block)."""
    return [weight.new_zeros(batch, *weight.shape), weight.new_zeros(batch, weight.shape[0])]


def _add_head(grads: list[torch.Tensor], g_out: torch.Tensor, x: torch.Tensor) -> None:
    """A plain linear head y = x @ W^T + b: add each image's W and b gradients from g_out [B, n, out] and
    x [B, n, in] to grads ([B, out, in], [B, out])."""
    grads[0].baddbmm_(g_out.transpose(1, 2), x)
    grads[1].add_(g_out.sum(dim=1))
