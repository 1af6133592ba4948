"""The modulated fully connected layer of CIPS-3D's INR (the official `SinStyleMod`, which has no sine).

Shared with the 2D CIPS generator (`nn.styled`): the math is `modulate_weight`, the layers hold weights.
"""

from __future__ import annotations

import torch
from torch import nn

from cips3d import constants as K
from cips3d.nn.init import empty_linear, kaiming_leaky_, linear_default_
from cips3d.nn.transforms import plain_autograd_wanted


def modulate_weight(
    weight: torch.Tensor,
    style: torch.Tensor,
    eps: float = K.DEMOD_EPS,
    style_offset: float = 1.0,
    demodulate: bool = True,
) -> torch.Tensor:
    """Per-sample weights W'[b] = demod(W * (style_offset + s[b])) (spec 1.5; 8.1 for 2D CIPS).

    Args:
        weight: [in, out], used as x @ W.
        style: [B, in], the output of the modulation FC.
        eps: added under the square root of the demodulation.
        style_offset: added to the style: 1 in CIPS-3D (its FC has zero-mean output), 0 in 2D CIPS
            (whose style FC starts with bias 1 instead).
        demodulate: False for the 2D to-RGB layers.

    Returns:
        [B, in, out], each output column scaled to unit norm over the inputs when demodulated.
    """
    s = style + style_offset if style_offset else style
    if not demodulate:
        return weight.unsqueeze(0) * s.unsqueeze(-1)
    if not (weight.requires_grad or s.requires_grad) or not torch.is_grad_enabled():
        return _demodulated(weight, s, eps)[0]
    if s.shape[0] == 0 or s.dtype != weight.dtype or plain_autograd_wanted(weight, s):
        # The written-out gradient assumes neither an empty batch nor mixed dtypes, and torch.func's
        # second derivatives (hessian) would go through its once-differentiable backward unchecked.
        return _plain_demodulated(weight, s, eps)[0]
    return _Demodulated.apply(weight, s, eps)[0]


def _plain_demodulated(
    weight: torch.Tensor, s: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """`_demodulated` in plain elementwise passes, out of place (autograd can differentiate it)."""
    w = weight.unsqueeze(0) * s.unsqueeze(-1)
    d = torch.rsqrt(w.square().sum(dim=1, keepdim=True) + eps)
    return w * d, d


def _demodulated(weight: torch.Tensor, s: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """weight [in, out], s [B, in] -> (W' [B, in, out], d [B, 1, out]), W' = (W * s) * d with
    d = 1 / sqrt(sum_in (W * s)^2 + eps)."""
    if weight.device.type != "cpu":  # plain passes: no product that TF32 or a caller's autocast would round
        return _plain_demodulated(weight, s, eps)
    # On the CPU, sum_in (W * s)^2 as (s^2) @ (W^2): a small product instead of two passes over the
    # [B, in, out] weights (a 512-wide layer at batch 4: 0.44 -> 0.26 ms), in full precision.
    common = torch.promote_types(weight.dtype, s.dtype)
    with torch.autocast("cpu", enabled=False):
        d = torch.matmul(s.to(common).square(), weight.to(common).square())
    d = d.add_(eps).rsqrt_().unsqueeze(1)
    return (weight.unsqueeze(0) * s.unsqueeze(-1)).mul_(d), d


class _Demodulated(torch.autograd.Function):
    """`_demodulated` with its gradient written out: autograd's own backward walks the [B, in, out]
    tensors about a dozen times and keeps three of them alive; this one saves only W, s and d and writes
    one (forward and backward 1.5 instead of 2.6 ms for a 512-wide layer at batch 4 on a 2-core CPU).
    Not differentiable twice (nothing in CIPS-3D takes G's second derivative: torch.func transforms
    take autograd's own formula, see `modulate_weight`); it has a forward-mode rule.

    With u = W * s, W' = u * d: dL/du = g*d - u * d^3 * c where c[b, o] = sum_i g[b,i,o] * u[b,i,o];
    then dL/dW = sum_b s[b] * dL/du[b] and dL/ds = sum_o W * dL/du, both with u expanded as W * s.
    Returns (W', d); d is not differentiable (the caller keeps W').
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(weight: torch.Tensor, s: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
        return _demodulated(weight, s, eps)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        weight, s, _ = inputs
        d = output[1]
        ctx.mark_non_differentiable(d)
        ctx.save_for_backward(weight, s, d)
        ctx.save_for_forward(weight, s, d)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor, _: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        weight, s, d = ctx.saved_tensors
        with torch.autocast(grad.device.type, enabled=False):  # the small products stay in float32
            p = grad * weight  # [B, in, out]: with the two products below, the only pass writing one
            e = torch.bmm(s.unsqueeze(1), p).mul_(d.pow(3)).squeeze(1)  # d^3 c: [B, out]
            grad_s = grad_weight = None
            if ctx.needs_input_grad[1]:
                if grad.device.type == "cpu":  # sum_out W g d: [B, in]
                    grad_s = torch.bmm(p, d.transpose(1, 2)).squeeze(-1)
                else:  # a plain sum: exact where --tf32 would round a product
                    grad_s = (p * d).sum(-1)
                grad_s.sub_(s * (e @ weight.square().t()))
            if ctx.needs_input_grad[0]:  # not when fitting latents to a frozen generator
                grad_weight = weight * (s.square().t() @ e).neg_()
                for b in range(grad.shape[0]):  # 4x faster than einsum's route for this contraction
                    grad_weight.addcmul_(grad[b], torch.outer(s[b], d[b, 0]))
        return grad_weight, grad_s, None

    @staticmethod
    def jvp(ctx, weight_t: torch.Tensor | None, s_t: torch.Tensor | None, _) -> tuple[torch.Tensor, None]:
        """Forward mode: du = dW * s + W * ds, dd = -d^3 sum_in(u * du), dW' = du * d + u * dd."""
        weight, s, d = ctx.saved_tensors
        u = weight.unsqueeze(0) * s.unsqueeze(-1)
        du = torch.zeros_like(u)
        if weight_t is not None:
            du = du + weight_t.unsqueeze(0) * s.unsqueeze(-1)
        if s_t is not None:
            du = du + weight.unsqueeze(0) * s_t.unsqueeze(-1)
        dd = -(d**3) * (u * du).sum(dim=1, keepdim=True)
        return du * d + u * dd, None


class ModulatedLinear(nn.Module):
    """x [B, N, in] -> x @ modulate_weight(W, modulation(w)), no bias.

    Args:
        in_dim: input width.
        out_dim: output width.
        style_dim: width of the style vector w.
    """

    def __init__(self, in_dim: int, out_dim: int, style_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim))
        self.modulation = empty_linear(style_dim, in_dim)
        # Never applied, as in the official layer; kept (frozen) because official checkpoints and the
        # official parameter count (11,287,743 for FFHQ) include it.
        self.norm = nn.LayerNorm(in_dim)
        self.norm.requires_grad_(False)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None) -> None:
        """Official order: the weight is drawn N(0, 1) and then re-drawn Kaiming-normal with fan = out
        (PyTorch's fan-in of an [in, out] tensor); the modulation FC is default-initialised, then its
        weight re-drawn Kaiming-normal."""
        self.weight.normal_(generator=generator)
        kaiming_leaky_(self.weight, generator)
        linear_default_(self.modulation, generator)
        kaiming_leaky_(self.modulation.weight, generator)
        self.norm.reset_parameters()  # ones and zeros: draws nothing

    def modulated_weight(self, style: torch.Tensor) -> torch.Tensor:
        """style [B, D] -> the per-sample weights [B, in, out] (computed once per render, not per chunk)."""
        return modulate_weight(self.weight, self.modulation(style))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """x [B, N, in], style [B, D] -> [B, N, out]."""
        return torch.bmm(x, self.modulated_weight(style))
