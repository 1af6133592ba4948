"""The NeRF field as one Triton kernel: points in, feature and raw sigma out (inference only).

Why: evaluated layer by layer, the field writes every activation to GPU memory and reads it back
around each product and each sine, about 34 GB per 512 px frame of the `ffhq` preset (6.3 M points
x (128 + 128 + 64 + 32) float32 values, several passes each). Here a block of points goes through
every layer in registers and on-chip memory; only the points, the folded weights and the outputs
cross GPU memory (under 1 GB per frame).

One program evaluates BLOCK points of one image:

    x = points * scale                                   (the official UniformBoxWarp)
    x = sin(x @ W_0 + b_0)                               (in_dim = 3: three multiply-adds per unit)
    x = sin(x @ W_l + b_l)     for the other hidden layers
    sigma = x . w_sigma + b_sigma
    c = sin(x @ W_c + b_c);  feature = c @ W_f^T + b_f

with W and b the FiLM layers of that image with its frequencies and phases folded in
(`cips3d.nn.film.FoldedFiLM`). Products accumulate in float32; their operands are IEEE float32, or
TF32 with `tf32=True` (the `field_precision='tf32'` of the PyTorch path).

On a CPU the same kernel runs in Triton's interpreter (NumPy, very slow): that is how the tests check
it against the PyTorch field without a GPU.
"""

# No `from __future__ import annotations` here: Triton 3.0 (PyTorch 2.4) in interpreter mode reads a
# kernel's `tl.constexpr` only from real annotations, not from their text.
import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import libdevice

from cips3d import constants as K
from cips3d.errors import ConfigError
from cips3d.kernels.common import interpreting, power_of_two, require_gpu

BLOCK_POINTS = 256
"""Points per program. On an H100 (`benchmarks/field_kernel_sweep.py`, one 512 px pass of 3.1 M points,
TF32, hardware sine): 256 points with 8 warps 2.03 ms; 128 with 4 warps 2.46 ms (8: 2.96); 256 with 4
warps 4.81 ms; 64 with 4 warps 3.97 ms; 32 with 4 warps 4.32 ms. Larger blocks share each program's
weight loads among more points, as long as the warps can hold the tile."""
NUM_WARPS = 8


@triton.jit
def _sine(x, FAST: tl.constexpr):
    """sin(x): libdevice's accurate sinf, or (FAST) the hardware's approximate sine after reducing x to
    [-pi, pi] with a two-part 2 pi (the approximation alone loses accuracy as |x| grows)."""
    if FAST:
        turns = libdevice.rint(x * 0.15915494309189535)  # 1 / (2 pi)
        x = x - turns * 6.28125 - turns * 1.9353071795864769e-3  # 2 pi = 6.28125 + 1.935...e-3
        return libdevice.fast_sinf(x)
    else:
        return tl.sin(x)


@triton.jit
def _field_kernel(
    points, n_points,
    w_first, b_first, w_hidden, b_hidden,
    w_sigma, b_sigma, w_color, b_color, w_feature, b_feature,
    feature_out, sigma_out,
    scale,
    IN: tl.constexpr, H: tl.constexpr, H2: tl.constexpr, C: tl.constexpr, LAYERS: tl.constexpr,
    BLOCK: tl.constexpr, PRECISION: tl.constexpr, FAST_SINE: tl.constexpr,
):  # fmt: skip
    b = tl.program_id(1)
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    valid = rows < n_points
    h = tl.arange(0, H)
    h2 = tl.arange(0, H2)
    c = tl.arange(0, C)

    # First FiLM layer: in_dim (3) is too narrow for a tensor-core product; multiply-adds instead.
    x = tl.zeros((BLOCK, H), dtype=tl.float32) + tl.load(b_first + b * H + h)[None, :]
    for i in tl.static_range(IN):
        p = tl.load(points + (b * n_points + rows) * IN + i, mask=valid, other=0.0) * scale
        x += p[:, None] * tl.load(w_first + (b * IN + i) * H + h)[None, :]
    x = _sine(x, FAST_SINE)

    # The other hidden FiLM layers, stacked as [LAYERS - 1, B, H, H].
    for layer in tl.static_range(LAYERS - 1):
        base = layer * tl.num_programs(1) + b
        w = tl.load(w_hidden + base * H * H + h[:, None] * H + h[None, :])
        x = tl.dot(x, w, input_precision=PRECISION) + tl.load(b_hidden + base * H + h)[None, :]
        x = _sine(x, FAST_SINE)

    sigma = tl.sum(x * tl.load(w_sigma + h)[None, :], axis=1) + tl.load(b_sigma)
    tl.store(sigma_out + b * n_points + rows, sigma, mask=valid)

    w = tl.load(w_color + b * H * H2 + h[:, None] * H2 + h2[None, :])
    color = tl.dot(x, w, input_precision=PRECISION) + tl.load(b_color + b * H2 + h2)[None, :]
    color = _sine(color, FAST_SINE)
    w = tl.load(w_feature + c[None, :] * H2 + h2[:, None])  # nn.Linear weight [C, H2], read transposed
    feature = tl.dot(color, w, input_precision=PRECISION) + tl.load(b_feature + c)[None, :]
    tl.store(feature_out + (b * n_points + rows)[:, None] * C + c[None, :], feature, mask=valid[:, None])


def check_shapes(hidden_dim: int, feature_dim: int, in_dim: int) -> None:
    """Raise ConfigError unless the kernel can evaluate a field of these widths."""
    widths = {"hidden": hidden_dim, "colour (hidden / 2)": hidden_dim // 2, "feature": feature_dim}
    bad = [f"{name} {w}" for name, w in widths.items() if not power_of_two(w)]
    if bad or hidden_dim % 2 or in_dim > 8:
        raise ConfigError(
            "field_kernel='triton' needs power-of-two layer widths of at least 16 and at most 8 input "
            f"coordinates; this field has {', '.join(bad) or f'{in_dim} inputs'}."
        )


@torch.no_grad()
def fused_field(
    points: torch.Tensor, folded, sigma: torch.nn.Linear, feature: torch.nn.Linear, tf32: bool,
    block: int = BLOCK_POINTS, num_warps: int = NUM_WARPS, num_stages: int | None = None,
    fast_sine: bool | None = None,
):  # fmt: skip
    """points [B, N, IN] -> (feature [B, N, C], raw sigma [B, N, 1]), all float32.

    `folded` is the field's `NerfModulation` (FiLM layers with styles folded in); `sigma` and
    `feature` are its two plain linear heads. Equal to `NerfField._evaluate` up to float32 rounding.
    `block`, `num_warps` and `num_stages` set the launch; `benchmarks/field_kernel_sweep.py` times them.
    `fast_sine` (default: on a GPU) takes the hardware's approximate sine after an exact-enough range
    reduction: 2.9x faster on an H100 (7.38 -> 2.54 ms per pass) with no change in the field's error
    against IEEE float32 at the sweep's precision (TF32 products dominate it); Triton's interpreter has
    no such sine, so there it is off.
    """
    require_gpu(points, "field_kernel='triton'")
    batch, n, in_dim = points.shape
    first, rest = folded.hidden[0], folded.hidden[1:]
    hidden_dim = first.weight.shape[-1]
    check_shapes(hidden_dim, feature.weight.shape[0], in_dim)
    if rest:
        w_hidden = torch.stack([layer.weight.expand(batch, -1, -1) for layer in rest]).contiguous()
        b_hidden = torch.stack([layer.bias.expand(batch, -1, -1) for layer in rest]).contiguous()
    else:  # one hidden layer: nothing is read from these
        w_hidden = b_hidden = first.bias.new_zeros(1)
    feature_out = points.new_empty(batch, n, feature.weight.shape[0])
    sigma_out = points.new_empty(batch, n, 1)
    args = [
        points.float().contiguous(), n,
        _per_image(first.weight, batch), _per_image(first.bias, batch), w_hidden, b_hidden,
        sigma.weight.reshape(-1).contiguous(), sigma.bias.contiguous(),
        _per_image(folded.color.weight, batch), _per_image(folded.color.bias, batch),
        feature.weight.contiguous(), feature.bias.contiguous(),
        feature_out, sigma_out, K.POINT_SCALE,
    ]  # fmt: skip
    fast_sine = not interpreting() if fast_sine is None else fast_sine
    grid = (triton.cdiv(n, block), batch)
    stages = {} if num_stages is None else {"num_stages": num_stages}
    _field_kernel[grid](
        *args, IN=in_dim, H=hidden_dim, H2=hidden_dim // 2, C=feature.weight.shape[0],
        LAYERS=len(folded.hidden), BLOCK=block, PRECISION="tf32" if tf32 else "ieee", FAST_SINE=fast_sine,
        num_warps=num_warps, **stages,
    )  # fmt: skip
    return feature_out, sigma_out


def _per_image(t: torch.Tensor, batch: int) -> torch.Tensor:
    """A folded weight or bias as a contiguous [B, ...] tensor (styles may be shared by broadcast)."""
    return t.expand(batch, *t.shape[1:]).contiguous()
