"""Equalized-learning-rate layers of the discriminator (rosinality StyleGAN2 style, spec 3.1).

Weights are stored N(0, 1) and scaled at run time by 1/sqrt(fan_in); biases start at zero and live in
the activation (`FusedLeakyReLU`). The official CUDA ops are plain PyTorch here: the fused bias-act is
`leaky_relu(x + b) * sqrt(2)` and the blur is `upfirdn2d` with up = down = 1, i.e. a padded depthwise
convolution with the flipped kernel, whose derivatives of every order (R1 needs the second) are again
blurs (`blur`).

The convolutions differentiate through PyTorch's own gradient op at every order (`conv2d`), where
PyTorch's generic double backward would run R1's weight gradient as a slow swapped-role convolution.

Modules are built without drawing random numbers; `reset_parameters(generator)` draws the official
init in the official order (construction order of the official modules).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cips3d import constants as K
from cips3d.nn.transforms import plain_graph_wanted


def blur_kernel(taps: tuple[float, ...] = K.D_BLUR_TAPS) -> torch.Tensor:
    """The separable 2-D kernel outer(taps, taps) / sum, [len(taps), len(taps)] (official `make_kernel`)."""
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum()


def blur(x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
    """`upfirdn2d(x, kernel, up=1, down=1, pad=pad)`: zero-pad, then a per-channel valid convolution.

    The kernel is a fixed filter and gets no gradient. Its gradients with respect to x, of any order,
    are again per-channel convolutions (`_Blur` and `_BlurAdjoint` are each other's backward), because
    PyTorch's generic double backward of a grouped convolution also computes the kernel's gradient, one
    channel at a time: thousands of tiny convolutions in every R1 step.

    Args:
        x: [B, C, H, W].
        kernel: [kh, kw]; upfirdn2d convolves (not correlates), hence the flip before `conv2d`.
        pad: (before, after), the same on both axes, each >= 0.

    Returns:
        [B, C, H + before + after - kh + 1, W + before + after - kw + 1].
    """
    weight = kernel.flip(0, 1).to(x)[None, None].expand(x.shape[1], 1, *kernel.shape)
    if kernel.requires_grad:  # a learned kernel: let autograd differentiate the plain convolution
        return _pad_and_convolve(x, weight, pad)
    return _Blur.apply(x, weight, pad)


def _pad_and_convolve(x: torch.Tensor, weight: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
    """Zero-pad x [B, C, H, W] by pad on both axes, then convolve each channel with weight [C, 1, kh, kw]."""
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    return F.conv2d(x, weight, groups=x.shape[1])


def _adjoint(g: torch.Tensor, weight: torch.Tensor, pad: tuple[int, int], size: torch.Size) -> torch.Tensor:
    """The transpose of `_pad_and_convolve`: g [B, C, H', W'] -> [B, C, *size] (the unpadded input size)."""
    full = F.conv_transpose2d(g, weight, groups=g.shape[1])
    return full[:, :, pad[0] : pad[0] + size[0], pad[0] : pad[0] + size[1]]


class _Blur(torch.autograd.Function):
    """`_pad_and_convolve` whose backward is `_BlurAdjoint`, so every order of derivative stays a blur.

    Written with `setup_context` so that torch.func transforms (grad, vmap) can go through it too.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight, pad):
        return _pad_and_convolve(x, weight, pad)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, pad = inputs
        ctx.save_for_backward(weight)
        ctx.pad, ctx.size = pad, x.shape[2:]

    @staticmethod
    def backward(ctx, g):
        (weight,) = ctx.saved_tensors
        return _BlurAdjoint.apply(g, weight, ctx.pad, ctx.size), None, None


class _BlurAdjoint(torch.autograd.Function):
    """`_adjoint`, whose backward is `_Blur` (the adjoint of the adjoint)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(g, weight, pad, size):
        return _adjoint(g, weight, pad, size)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, weight, pad, _ = inputs
        ctx.save_for_backward(weight)
        ctx.pad = pad

    @staticmethod
    def backward(ctx, gg):
        (weight,) = ctx.saved_tensors
        return _Blur.apply(gg, weight, ctx.pad), None, None, None


def conv2d(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """`F.conv2d` (no bias, no groups) whose derivatives of every order are convolutions again, each
    through the op PyTorch's own first derivative uses (`_Conv` and `_ConvGrads`, each the other's
    backward).

    R1's second derivative needs the weight gradient of the input gradient's graph; PyTorch's generic
    double backward computes it as a convolution with batch and channels swapped ([C, B, H, W] with a
    kernel the size of the feature map), which oneDNN runs at half the speed of the weight gradient
    proper: on a 2-core Xeon, 108 -> 52 ms for a 512-channel 3x3 layer at 32 px batch 4. With R1's
    input gradient asking for no weight gradient (`_wanted`), the discriminator's part of a 32 px batch 4
    D step (two passes, R1, backward) went 1.45 -> 1.31 s (medians, one process). Batched inputs on
    CPUs only, where a gradient may be recorded; elsewhere, and under torch.compile, torch.func, CPU
    autocast (whose dtypes the saved tensors would not keep) or forward-mode AD (no jvp here), the
    plain convolution.
    """
    recorded = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    if x.device.type != "cpu" or x.dim() != 4 or not recorded or plain_graph_wanted((x, weight), ()):
        return F.conv2d(x, weight, stride=stride, padding=padding)
    return _Conv.apply(x, weight, stride, padding)


def _backward(g, x, weight, stride: int, padding: int, need_x: bool, need_w: bool):
    """PyTorch's own gradients of conv2d(x, weight) (x's and/or the weight's, None for the other)
    given the output gradient g; both from one call where both are wanted (it shares work: 88 ms
    against 2 x 53). The input gradient reads only x's shape, the weight gradient only the weight's."""
    mask = [need_x, need_w, False]
    return torch.ops.aten.convolution_backward(
        g, x, weight, None, [stride] * 2, [padding] * 2, [1, 1], False, [0, 0], 1, mask
    )[:2]


def _gradients(g, x, weight, need_x: bool, need_w: bool, stride: int, padding: int):
    """The input and weight gradients of conv2d(x, weight), each differentiable again, None where not
    wanted. A tensor whose partner's gradient is not wanted is read for its shape only: pass a
    detached stand-in of that shape (no graph edge)."""
    if not (need_x or need_w):
        return None, None
    return _ConvGrads.apply(g, x, weight, need_x, need_w, stride, padding)


def _wanted(ctx, index: int) -> bool:
    """Whether the running backward will use the gradient of input `index` of this Function's node.

    `ctx.needs_input_grad` says only that the input requires a gradient; R1's
    `autograd.grad(logits, images, create_graph=True)` needs no weight gradient, which PyTorch's own
    convolution node knows and skips (half of each layer's backward). The engine says it through a
    private call (which `torch.autograd.graph.register_multi_grad_hook` uses); it cannot answer for a
    leaf captured by `autograd.grad` (so a leaf weight keeps its gradient computed: `EqualConv2d`'s is
    the scaled one, not a leaf), nor in a PyTorch without the call: wanted, then."""
    if not ctx.needs_input_grad[index]:
        return False
    node = ctx.next_functions[index][0]
    will_execute = getattr(torch._C, "_will_engine_execute_node", None)
    if will_execute is None:
        return True
    try:
        return bool(will_execute(node))
    except RuntimeError:
        return True


class _Conv(torch.autograd.Function):
    """conv2d whose backward is `_ConvGrads` (differentiable again)."""

    @staticmethod
    def forward(x, weight, stride, padding):
        return F.conv2d(x, weight, stride=stride, padding=padding)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, ctx.stride, ctx.padding = inputs
        ctx.save_for_backward(x, weight)

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        need_x, need_w = _wanted(ctx, 0), _wanted(ctx, 1)
        x = x if need_w else x.detach()  # read for its values only by the weight gradient
        weight = weight if need_x else weight.detach()
        return *_gradients(g, x, weight, need_x, need_w, ctx.stride, ctx.padding), None, None


class _ConvGrads(torch.autograd.Function):
    """(g, x, weight) -> (input gradient, weight gradient), each or both (None for the other). The
    first is linear in g and the weight, the second in g and x: the backward is two convolutions (in
    g) and the gradients of a convolution with input ggx and weight ggw (in the weight and x), again
    through this function."""

    @staticmethod
    def forward(g, x, weight, need_x, need_w, stride, padding):
        return _backward(g, x, weight, stride, padding, need_x, need_w)

    @staticmethod
    def setup_context(ctx, inputs, output):
        g, x, weight, _, _, ctx.stride, ctx.padding = inputs
        ctx.save_for_backward(g, x, weight)
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, ggx, ggw):
        g, x, weight = ctx.saved_tensors
        need_g, need_x, need_w = ctx.needs_input_grad[:3]
        grad_g = None
        if need_g:
            terms = [_Conv.apply(ggx, weight, ctx.stride, ctx.padding)] if ggx is not None else []
            terms += [_Conv.apply(x, ggw, ctx.stride, ctx.padding)] if ggw is not None else []
            grad_g = terms[0] + terms[1] if len(terms) == 2 else (terms[0] if terms else None)
        # x's gradient comes from the weight gradient (a convolution's input gradient with weight
        # ggw), the weight's from the input gradient (its weight gradient with input ggx).
        want_x, want_w = need_x and ggw is not None, need_w and ggx is not None
        inputs = ggx if want_w else x.detach(), ggw if want_x else weight.detach()
        grad_x, grad_w = _gradients(g, *inputs, want_x, want_w, ctx.stride, ctx.padding)
        return grad_g, grad_x, grad_w, None, None, None, None


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """leaky_relu(x + bias, 0.2) * sqrt(2), bias [C] broadcast over dim 1 of x [B, C, ...]."""
    bias = bias.view(1, -1, *([1] * (x.dim() - 2)))
    return F.leaky_relu(x + bias, K.LEAKY_SLOPE) * K.D_ACT_GAIN


class FusedLeakyReLU(nn.Module):
    """The official `FusedLeakyReLU(C)`: owns the bias [C] of the layer before it (zero init)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.empty(channels))

    @torch.no_grad()
    def reset_parameters(self) -> None:
        self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias)


class Blur(nn.Module):
    """The [1,3,3,1] blur before a stride-2 convolution; the 4x4 kernel is a (saved) buffer, as official."""

    def __init__(self, pad: tuple[int, int]) -> None:
        super().__init__()
        self.pad = pad
        self.register_buffer("kernel", blur_kernel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W] -> [B, C, H + pad0 + pad1 - 3, W + pad0 + pad1 - 3]."""
        return blur(x, self.kernel, self.pad)


class EqualConv2d(nn.Module):
    """conv2d with the weight [out, in, k, k] scaled by 1/sqrt(in * k * k) at run time; no bias."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        self.stride = stride
        self.padding = padding

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None) -> None:
        self.weight.normal_(generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, in, H, W] -> [B, out, (H + 2p - k) // stride + 1, ...]."""
        return conv2d(x, self.weight * self.scale, self.stride, self.padding)


class EqualLinear(nn.Module):
    """Linear with the weight [out, in] scaled by lr_mul/sqrt(in) at run time and a bias [out] scaled
    by lr_mul (StyleGAN2's learning-rate multiplier: the weight is drawn N(0, 1)/lr_mul, the bias
    starts at `bias_init`). The discriminator uses lr_mul 1 and bias_init 0; the 2D CIPS mapping
    network lr_mul 0.01, and its style layers bias_init 1.

    With `activate`, the bias goes through the fused bias-LeakyReLU instead of the matrix product.
    """

    def __init__(
        self, in_dim: int, out_dim: int, activate: bool = False, lr_mul: float = 1.0, bias_init: float = 0.0
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))
        self.bias = nn.Parameter(torch.empty(out_dim))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul, self.bias_init = lr_mul, bias_init
        self.activate = activate

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None) -> None:
        self.weight.normal_(generator=generator)
        if self.lr_mul != 1:
            self.weight.div_(self.lr_mul)
        self.bias.fill_(self.bias_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., in] -> [..., out]."""
        bias = self.bias * self.lr_mul if self.lr_mul != 1 else self.bias
        if self.activate:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias)


class ConvLayer(nn.Module):
    """[blur] -> EqualConv2d -> [FusedLeakyReLU]; with `downsample` the conv has stride 2 after the blur.

    Submodules `blur`, `conv` and `act` are the official `down_blur`, `equal_conv` and `flrelu`. The conv
    never has its own bias: it is the activation's, or (skip convs) there is none.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        downsample: bool = False,
        activate: bool = True,
    ) -> None:
        super().__init__()
        # Padding that keeps the blurred map aligned with the stride-2 grid (official ConvLayer):
        # (2, 2) before a 3x3 conv, (1, 1) before a 1x1 conv.
        p = (len(K.D_BLUR_TAPS) - 2) + (kernel_size - 1)
        self.blur = Blur(((p + 1) // 2, p // 2)) if downsample else None
        stride, padding = (2, 0) if downsample else (1, kernel_size // 2)
        self.conv = EqualConv2d(in_channels, out_channels, kernel_size, stride, padding)
        self.act = FusedLeakyReLU(out_channels) if activate else None

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None) -> None:
        self.conv.reset_parameters(generator)
        if self.act is not None:
            self.act.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, in, H, W] -> [B, out, H, W], or [B, out, H/2, W/2] when downsampling."""
        if self.blur is not None:
            x = self.blur(x)
        x = self.conv(x)
        return self.act(x) if self.act is not None else x


class ResBlock(nn.Module):
    """Residual block that halves the resolution: (conv2(conv1(x)) + skip(x)) / sqrt(2).

    conv1 (in -> in) and conv2 (in -> out) are 3x3; the stride-2 step is in conv2, or in conv1 when
    `first_downsample` (the aux discriminator). skip is a bias-free 1x1 stride-2 conv with its own blur.
    """

    def __init__(self, in_channels: int, out_channels: int, first_downsample: bool = False) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3, downsample=first_downsample)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=not first_downsample)
        self.skip = ConvLayer(in_channels, out_channels, 1, downsample=True, activate=False)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None) -> None:
        for layer in (self.conv1, self.conv2, self.skip):
            layer.reset_parameters(generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, in, H, W] -> [B, out, H/2, W/2]."""
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)
