"""One modulated FC layer of the INR decoder as a Triton product with its activation (and residual) fused.

Why: the decoder's products run in cuBLAS at about 80% of an H100's bf16 peak, but each layer then
passes over its activations again for the LeakyReLU (in place: read and write) and, in residual
blocks, for the add (two reads, one write): 54 passes over 262,144 x 512 bfloat16 values per 512 px
frame, 4.6 ms of a 17.4 ms frame (`benchmarks/h100/profile-after.json`). Here the activation and the
residual are applied to each output tile while it is still in registers:

    y = leaky_relu(x @ W, 0.2)  (+ residual)

with x [B, M, K] and the per-image modulated W [B, K, N]. Products accumulate in float32; the
activation and the residual are applied in float32 and the result is rounded once to the output type
(PyTorch's path rounds the product, the activation and the sum each to bfloat16, so the two differ by
bfloat16 rounding). Operands are bfloat16, or float32 (IEEE or TF32 products).

Measured on an H100 with the fused field kernel and a CUDA graph: a 512 px frame in 15.3 ms (65.6 per
second) against 17.5 ms with cuBLAS products and separate activations (`benchmarks/RESULTS.md`).

On a CPU the same kernel runs in Triton's interpreter, which is how the tests check it without a GPU.
"""

# No `from __future__ import annotations` here: Triton 3.0 (PyTorch 2.4) in interpreter mode reads a
# kernel's `tl.constexpr` only from real annotations, not from their text.
import torch
import triton
import triton.language as tl

from cips3d import constants as K
from cips3d.errors import ConfigError
from cips3d.kernels.common import interpreting, power_of_two, require_gpu

LAUNCH = {
    torch.bfloat16: dict(BM=128, BN=256, BK=64, num_warps=8, num_stages=4),
    torch.float32: dict(BM=128, BN=128, BK=32, num_warps=8, num_stages=3),
}
"""Output tile (BM x BN), reduction step BK, warps and pipelining stages per operand type. bfloat16:
on an H100 one 262,144 x 512 x 512 layer with its residual takes 0.42 ms (cuBLAS's product alone
0.235 ms, plus the activation and the add 0.67 ms); 128 x 128 tiles with 3 stages took 0.55 ms,
64 x 256 0.50, 256 x 128 0.60. float32 operands take twice the shared memory per stage, so smaller
tiles (the bfloat16 setting needs 288 KB there, over the H100's 227 KB)."""


@triton.jit
def _modulated_fc_kernel(
    x, w, residual, out, M,
    K_DIM: tl.constexpr, N_DIM: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr, SLOPE: tl.constexpr, PRECISION: tl.constexpr, FLOAT32: tl.constexpr,
    UPCAST: tl.constexpr,
):  # fmt: skip
    b = tl.program_id(2).to(tl.int64)
    rows = tl.program_id(0) * BM + tl.arange(0, BM)
    cols = tl.program_id(1) * BN + tl.arange(0, BN)
    ks = tl.arange(0, BK)
    valid = rows < M
    row_offsets = (b * M + rows).to(tl.int64)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, K_DIM, BK):
        a = tl.load(x + row_offsets[:, None] * K_DIM + (k0 + ks)[None, :], mask=valid[:, None], other=0.0)
        weight = tl.load(w + b * K_DIM * N_DIM + (k0 + ks)[:, None] * N_DIM + cols[None, :])
        if UPCAST:  # Triton's interpreter has no bfloat16 arithmetic: its products in float32
            acc = tl.dot(a.to(tl.float32), weight.to(tl.float32), acc, input_precision="ieee")
        elif FLOAT32:
            acc = tl.dot(a, weight, acc, input_precision=PRECISION)
        else:
            acc = tl.dot(a, weight, acc)
    acc = tl.where(acc >= 0, acc, acc * SLOPE)
    offsets = row_offsets[:, None] * N_DIM + cols[None, :]
    if HAS_RESIDUAL:
        acc += tl.load(residual + offsets, mask=valid[:, None], other=0.0).to(tl.float32)
    tl.store(out + offsets, acc.to(out.dtype.element_ty), mask=valid[:, None])


def check_shapes(in_dim: int, out_dim: int) -> None:
    """Raise ConfigError unless the kernel can run a layer of these widths."""
    for launch in LAUNCH.values():
        k, n = min(in_dim, launch["BK"]), min(out_dim, launch["BN"])
        if not (power_of_two(k) and power_of_two(n) and in_dim % k == 0 and out_dim % n == 0):
            raise ConfigError(
                "inr_kernel='triton' needs layer widths that are powers of two of at least 16 or multiples "
                f"of {launch['BK']} (inputs) and {launch['BN']} (outputs); this layer is {in_dim} -> "
                f"{out_dim}."
            )


@torch.no_grad()
def modulated_fc(
    x: torch.Tensor, weight: torch.Tensor, residual: torch.Tensor | None = None, tf32: bool = False
) -> torch.Tensor:
    """leaky_relu(x @ weight, 0.2) (+ residual): x [B, M, K], weight [B, K, N] -> [B, M, N].

    The result and the operands take weight's type (bfloat16, or float32 with IEEE or, with `tf32`,
    TF32 products); `residual` [B, M, N] is added after the activation, as `InrBlock` does.
    """
    require_gpu(x, "inr_kernel='triton'")
    if weight.dtype not in (torch.bfloat16, torch.float32):
        raise ConfigError(f"inr_kernel='triton' runs bfloat16 or float32 products, not {weight.dtype}.")
    batch, m, in_dim = x.shape
    out_dim = weight.shape[-1]
    check_shapes(in_dim, out_dim)
    x = x.to(weight.dtype).contiguous()
    weight = weight.expand(batch, -1, -1).contiguous()
    out = x.new_empty(batch, m, out_dim)
    if residual is not None:
        residual = residual.to(weight.dtype).contiguous()
    launch = LAUNCH[weight.dtype] | {"BK": min(in_dim, LAUNCH[weight.dtype]["BK"])}
    launch["BN"] = min(out_dim, launch["BN"])
    grid = (triton.cdiv(m, launch["BM"]), out_dim // launch["BN"], batch)
    _modulated_fc_kernel[grid](
        x, weight, residual if residual is not None else out, out, m,
        K_DIM=in_dim, N_DIM=out_dim, **launch,
        HAS_RESIDUAL=residual is not None, SLOPE=K.LEAKY_SLOPE, PRECISION="tf32" if tf32 else "ieee",
        FLOAT32=weight.dtype == torch.float32, UPCAST=interpreting() and weight.dtype == torch.bfloat16,
    )  # fmt: skip
    return out
