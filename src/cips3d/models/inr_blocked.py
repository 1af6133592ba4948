"""The INR decoder on the CPU, one block of one image's pixels at a time: training with its gradient
written out, and inference through the same blocks.

Autograd runs each layer over the whole batch: a product writes [B, N, 512] (8 MB at the training
step's 4 x 1,024 pixels), and the LeakyReLU's derivative, the residual sums and the to-RGB heads'
gradients then walk it again in passes of their own, each a fresh buffer that has left the core's
cache. Here the forward and the backward go through the nine blocks one image and up to
`K.INR_BLOCK_ROWS` pixels at a time, so each pass reads what the product before it has just written;
the LeakyReLU's derivative is taken in place, the residual and the heads' gradients are added inside
the products (`addmm_`); the products and the saved activations are autograd's. Inference runs the same
blocks through three buffers of a block's size (so a training pass and a render that both take the
blocks compute the same numbers). Measured on a 2-core Xeon in alternating processes
(benchmarks/RESULTS.md): the G step at 32 px batch 4 0.613 -> 0.584 s (mean of 5 medians), a full
training iteration 4-6% and float32 inference 2-9% faster.

A backward that builds a graph itself (`create_graph=True`) or runs over batched gradients goes through
autograd's own graph of the same evaluation instead, so second derivatives are right. What it costs
against autograd: the gradients of every input that needs one are computed even when a backward asks
for fewer (`autograd.grad(rgb, feature)` with trainable weights), and the saved activations live until
the whole backward ends (autograd frees each layer's as it goes), so the weights' gradients, 72 MB at
batch 4, add to the peak; gradients that stop above block 0 keep autograd's layers
(`InrDecoder._row_decoder`).

The math is `inr_block`'s: per block y = lrelu(x @ W1'), out = lrelu(y @ W2') (+ x when residual), with
the per-image modulated weights W' [B, in, out]; the decoder's output before its tanh is the sum of the
to-RGB heads out @ Wh^T + bh of the blocks from `len(weights) - len(heads)` on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from cips3d import constants as K
from cips3d.nn.transforms import batched_gradients, graph_gradients

Pair = tuple[torch.Tensor, torch.Tensor]


def inr_block(x: torch.Tensor, weight1: torch.Tensor, weight2: torch.Tensor, residual: bool) -> torch.Tensor:
    """One INR block: x [B, N, in], modulated weights [B, in, out] and [B, out, out] -> [B, N, out]."""
    # Activations in place (no new buffers, less memory traffic): autograd allows it for a positive
    # slope, saving the activation's output for its backward.
    y = F.leaky_relu_(torch.bmm(x, weight1), K.LEAKY_SLOPE)
    y = F.leaky_relu_(torch.bmm(y, weight2), K.LEAKY_SLOPE)
    if not residual:
        return y
    return y + x if torch.is_grad_enabled() else y.add_(x)  # autograd keeps y: no in-place add then


def evaluate_inr(
    feature: torch.Tensor, weights: Sequence[Pair], residual: Sequence[bool], heads: Sequence[Pair]
) -> torch.Tensor:
    """feature [B, N, C], per block its modulated weights and whether it adds its input, the (weight
    [3, H], bias [3]) of the heads of the last `len(heads)` blocks -> the heads' sum [B, N, 3]."""
    first_head = len(weights) - len(heads)
    x, rgb = feature, None
    for i, ((w1, w2), adds) in enumerate(zip(weights, residual, strict=True)):
        x = inr_block(x, w1, w2, adds)
        if i >= first_head:
            out = F.linear(x, *heads[i - first_head])
            rgb = out if rgb is None else out + rgb
    return rgb


def inr_with_blocked_gradient(
    feature: torch.Tensor, weights: Sequence[Pair], residual: Sequence[bool], heads: Sequence[Pair]
) -> torch.Tensor:
    """`evaluate_inr`, differentiable in the feature, every modulated weight and the heads' weights and
    biases. The feature and every weight share one dtype; at least the last block has a head. Its
    backward always runs down to block 0: meant for gradients that reach it (`InrDecoder._row_decoder`
    gives shorter ones to autograd)."""
    if not heads or len(heads) > len(weights):
        raise ValueError(f"{len(heads)} heads for {len(weights)} blocks: the last block needs one.")
    flat = [t for head in heads for t in head] + [w for pair in weights for w in pair]
    return _BlockedInr.apply(tuple(residual), len(heads), feature, *flat)


def decode_rows(
    feature: torch.Tensor, weights: Sequence[Pair], residual: Sequence[bool], heads: Sequence[Pair]
) -> torch.Tensor:
    """`evaluate_inr` for inference on the CPU (nothing recorded): the same blocks of one image's rows as
    the training pass, through three buffers of a block's size, so both compute the same numbers (where
    both take the blocks)."""
    batch, n, _ = feature.shape
    rows = min(n, K.INR_BLOCK_ROWS)
    buffers = [feature.new_empty(rows, weights[0][0].shape[-1]) for _ in range(3)]
    rgb = feature.new_empty(batch, n, 3)
    for b, block in pixel_blocks(batch, n):
        x = feature[b, block]
        first, even, odd = (t[: x.shape[0]] for t in buffers)
        # Block i reads the output of block i - 1 (`even` or `odd`) and writes the other one.
        targets = [(first, odd if i % 2 else even, None) for i in range(len(weights))]
        _forward_rows(x, [(w1[b], w2[b]) for w1, w2 in weights], residual, targets, heads, rgb[b, block])
    return rgb


def pixel_blocks(batch: int, pixels: int) -> Iterator[tuple[int, slice]]:
    """(image, rows) of each block: `K.INR_BLOCK_ROWS` pixels of one image at a time."""
    for b in range(batch):
        for start in range(0, pixels, K.INR_BLOCK_ROWS):
            yield b, slice(start, start + K.INR_BLOCK_ROWS)


@dataclass
class _Layout:
    """Where the function's tensors are: the flat inputs (head weights and biases, then each block's
    two weights) and the saved activations (per block y1, then y2 for residual blocks, then out)."""

    residual: tuple[bool, ...]
    n_heads: int

    def inputs(self, flat: Sequence[torch.Tensor]) -> tuple[list[Pair], list[Pair]]:
        h = 2 * self.n_heads
        heads = [(flat[i], flat[i + 1]) for i in range(0, h, 2)]
        weights = [(flat[i], flat[i + 1]) for i in range(h, len(flat), 2)]
        return heads, weights

    def new_activations(self, feature: torch.Tensor, width: int) -> list[torch.Tensor]:
        """Empty [B, N, width] tensors for the saved activations, in their order: what autograd would
        keep (the LeakyReLUs' outputs, the products' inputs)."""
        count = sum(3 if adds else 2 for adds in self.residual)
        return [feature.new_empty(*feature.shape[:2], width) for _ in range(count)]

    def activations(self, saved: Sequence[torch.Tensor]) -> list[tuple[torch.Tensor, ...]]:
        """Per block (y1, y2, out), y2 being out for blocks without a residual."""
        found, k = [], 0
        for adds in self.residual:
            if adds:
                found.append(tuple(saved[k : k + 3]))
                k += 3
            else:
                found.append((saved[k], saved[k + 1], saved[k + 1]))
                k += 2
        return found


class _BlockedInr(torch.autograd.Function):
    """Inputs: per block whether it adds its input, the number of heads, the feature, each head's weight
    and bias, each block's two modulated weights. Output: the heads' sum [B, N, 3]."""

    @staticmethod
    def forward(ctx, residual, n_heads, feature, *flat):
        layout = _Layout(residual, n_heads)
        heads, weights = layout.inputs(flat)
        batch, n, _ = feature.shape
        saved = layout.new_activations(feature, weights[0][0].shape[-1])
        acts = layout.activations(saved)
        rgb = feature.new_empty(batch, n, 3)
        with torch.autocast(feature.device.type, enabled=False):
            for b, rows in pixel_blocks(batch, n):
                targets = [tuple(a[b, rows] for a in block) for block in acts]
                weights_b = [(w1[b], w2[b]) for w1, w2 in weights]
                _forward_rows(feature[b, rows], weights_b, residual, targets, heads, rgb[b, rows])
        ctx.layout = layout
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(feature, *flat, *saved)
        return rgb

    @staticmethod
    def backward(ctx, grad_rgb: torch.Tensor | None):
        layout: _Layout = ctx.layout
        feature, *rest = ctx.saved_tensors
        count = 2 * (layout.n_heads + len(layout.residual))
        flat, saved = rest[:count], rest[count:]
        if grad_rgb is None:
            return (None,) * len(ctx.needs_input_grad)
        if torch.is_grad_enabled() or batched_gradients(grad_rgb):
            return _autograd_backward(ctx, feature, flat, grad_rgb)
        with torch.autocast(feature.device.type, enabled=False):
            grads = _Gradients(ctx.needs_input_grad[2:], layout, feature, flat, saved)
            for b, rows in pixel_blocks(*feature.shape[:2]):
                grads.add_rows(b, rows, grad_rgb[b, rows])
        return (None, None, *grads.results())


def _forward_rows(
    x: torch.Tensor,
    weights: Sequence[Pair],
    residual: Sequence[bool],
    targets: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]],
    heads: Sequence[Pair],
    rgb: torch.Tensor,
) -> None:
    """Rows of one image through the blocks: x [n, C], that image's weights; block i writes its two
    LeakyReLUs' outputs into targets[i] = (y1, y2, out) and a residual y2 + x into out (or into y2 when
    out is None; a block without a residual leaves out alone); rgb [n, 3] gets the heads' sum, in
    `evaluate_inr`'s order."""
    first_head = len(weights) - len(heads)
    for i, ((w1, w2), adds, (t1, t2, t_out)) in enumerate(zip(weights, residual, targets, strict=True)):
        y = F.leaky_relu_(torch.mm(x, w1, out=t1), K.LEAKY_SLOPE)
        y = F.leaky_relu_(torch.mm(y, w2, out=t2), K.LEAKY_SLOPE)
        if adds:
            y = y.add_(x) if t_out is None else torch.add(y, x, out=t_out)
        x = y
        if i >= first_head:
            weight, bias = heads[i - first_head]
            if i == first_head:
                torch.addmm(bias, x, weight.t(), out=rgb)
            else:
                rgb.add_(torch.addmm(bias, x, weight.t()))


def _leaky_relu_backward(grad: torch.Tensor, output: torch.Tensor, into: torch.Tensor) -> torch.Tensor:
    """into = grad * LeakyReLU'(x), from the activation's output (its sign is the input's); `into` may be
    `grad` itself."""
    return torch.ops.aten.leaky_relu_backward.grad_input(grad, output, K.LEAKY_SLOPE, True, grad_input=into)


class _Gradients:
    """The backward's accumulators, filled block of rows by block; None for inputs that need none. The
    gradient runs down to block 0 (`InrDecoder._row_decoder` leaves shorter paths to autograd)."""

    def __init__(
        self,
        needed: Sequence[bool],
        layout: _Layout,
        feature: torch.Tensor,
        flat: Sequence[torch.Tensor],
        saved: Sequence[torch.Tensor],
    ) -> None:
        """needed: `ctx.needs_input_grad` of (feature, *flat); feature [B, N, C]; flat: the heads' and
        blocks' weights; saved: the activations ([B, N, H] each, `_Layout.activations`)."""
        need_feature, *need_flat = needed
        self.layout, self.feature = layout, feature
        self.heads, self.weights = layout.inputs(flat)
        self.acts = layout.activations(saved)
        need_heads, need_weights = layout.inputs(need_flat)
        self.head_grads = _allocated(self.heads, need_heads, torch.zeros_like)
        # Written by each image's first block of rows, added to by the others (`add_rows`); no rows, zeros.
        self.weight_grads = _allocated(
            self.weights, need_weights, torch.empty_like if feature.shape[1] else torch.zeros_like
        )
        self.feature_grad = torch.empty_like(feature) if need_feature else None
        # The gradients at a block's output and at its two LeakyReLUs' outputs, for a block of rows:
        # allocated once (a fresh 2 MB buffer per product would pay its page faults again and again).
        rows, width = min(feature.shape[1], K.INR_BLOCK_ROWS), self.weights[0][0].shape[-1]
        self.scratch = [feature.new_empty(rows, width) for _ in range(3)]

    def add_rows(self, b: int, rows: slice, grad_rgb: torch.Tensor) -> None:
        """Add the gradients of image b's pixels `rows`, given grad_rgb [n, 3] of the heads' sum."""
        g, g1, g2 = (t[: grad_rgb.shape[0]] for t in self.scratch)
        first_head = len(self.weights) - len(self.heads)
        self._add_heads(b, rows, grad_rgb, first_head)
        write = rows.start == 0
        for i in reversed(range(len(self.weights))):
            y1, y2, _ = (a[b, rows] for a in self.acts[i])
            w1, w2 = (w[b] for w in self.weights[i])
            grad_w1, grad_w2 = (None if w is None else w[b] for w in self.weight_grads[i])
            if i == len(self.weights) - 1:  # the last block has a head (`inr_with_blocked_gradient`)
                torch.mm(grad_rgb, self.heads[-1][0], out=g)
            elif i >= first_head:
                g.addmm_(grad_rgb, self.heads[i - first_head][0])
            adds = self.layout.residual[i]
            # A residual block's g is also its input's gradient: LeakyReLU's derivative goes to g2 then.
            into = g2 if adds else g
            _leaky_relu_backward(g, y2, into)
            _write_or_add(grad_w2, y1.t(), into, write)
            _leaky_relu_backward(torch.mm(into, w2.t(), out=g1), y1, g1)
            x = self.feature[b, rows] if i == 0 else self.acts[i - 1][-1][b, rows]
            _write_or_add(grad_w1, x.t(), g1, write)
            if i > 0:  # the gradient at this block's input, the output of block i - 1
                _input_gradient(g1, w1, g if adds else None, g)
            elif self.feature_grad is not None:
                _input_gradient(g1, w1, g if adds else None, self.feature_grad[b, rows])

    def _add_heads(self, b: int, rows: slice, grad_rgb: torch.Tensor, first_head: int) -> None:
        summed = grad_rgb.sum(dim=0)
        for i, (grad_weight, grad_bias) in enumerate(self.head_grads):
            if grad_weight is not None:
                grad_weight.addmm_(grad_rgb.t(), self.acts[first_head + i][-1][b, rows])
            if grad_bias is not None:
                grad_bias.add_(summed)

    def results(self) -> list[torch.Tensor | None]:
        """The gradients in the function's input order: feature, heads, blocks' weights."""
        heads = [g for pair in self.head_grads for g in pair]
        return [self.feature_grad, *heads, *(g for pair in self.weight_grads for g in pair)]


def _input_gradient(
    g1: torch.Tensor, w1: torch.Tensor, residual: torch.Tensor | None, out: torch.Tensor
) -> None:
    """out = g1 @ w1^T (+ residual, the gradient reaching the input around the block); `out` may be
    `residual` itself."""
    if residual is None:
        torch.mm(g1, w1.t(), out=out)
    elif out is residual:
        out.addmm_(g1, w1.t())
    else:
        torch.addmm(residual, g1, w1.t(), out=out)


def _allocated(pairs: Sequence[Pair], needs: Sequence[tuple[bool, bool]], new) -> list[list]:
    """A new tensor like each one whose gradient is needed, None for the others."""
    return [
        [new(t) if need else None for t, need in zip(pair, need_pair, strict=True)]
        for pair, need_pair in zip(pairs, needs, strict=True)
    ]


def _write_or_add(into: torch.Tensor | None, a: torch.Tensor, b: torch.Tensor, write: bool) -> None:
    """into = a @ b (write) or into += a @ b; nothing when `into` is None (no gradient wanted)."""
    if into is None:
        return
    if write:
        torch.mm(a, b, out=into)
    else:
        into.addmm_(a, b)


def _autograd_backward(ctx, feature, flat, grad_rgb) -> tuple[torch.Tensor | None, ...]:
    """The gradients through autograd's own graph of the whole evaluation (differentiable again), from
    the saved inputs (unpacked once: non-reentrant checkpointing allows no more)."""
    layout: _Layout = ctx.layout
    with torch.enable_grad():
        heads, weights = layout.inputs(flat)
        rgb = evaluate_inr(feature, weights, layout.residual, heads)
    return (None, None, *graph_gradients([rgb], [grad_rgb], (feature, *flat), ctx.needs_input_grad[2:]))
