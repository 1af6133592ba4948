"""Run the fused INR layer kernel in Triton's interpreter and print how far it is from PyTorch.

`python -m tests.kernels.interpret_inr` with TRITON_INTERPRET=1 set (test_inr_triton.py does it: the
variable must be set before triton is imported). Prints one JSON object.
"""

from __future__ import annotations

import json

import torch
from torch.nn import functional as F

from cips3d.kernels import inr_triton
from tests.kernels.interpreted_renders import count_calls, render, tiny_model, with_autograd

# in -> out widths: the ffhq decoder's first layer (32 -> 512) and others, the tiny one's (16 -> 64)
LAYERS = {"ffhq-first": (32, 512), "ffhq": (512, 512), "tiny-first": (16, 64), "tiny": (64, 64)}


def layer_errors(in_dim: int, out_dim: int, dtype: torch.dtype) -> dict[str, float]:
    """150 rows of two images (not a multiple of the block: the masks are exercised), with and without
    the residual, against float64 on the same (rounded) operands; errors relative to the largest
    output."""
    g = torch.Generator().manual_seed(in_dim + out_dim)
    x = torch.randn(2, 150, in_dim, generator=g)
    weight = (torch.randn(2, in_dim, out_dim, generator=g) / in_dim**0.5).to(dtype)
    residual = torch.randn(2, 150, out_dim, generator=g).to(dtype)
    exact = F.leaky_relu(x.to(dtype).double() @ weight.double(), 0.2)
    plain = inr_triton.modulated_fc(x, weight)
    added = inr_triton.modulated_fc(x, weight, residual=residual)
    scale = float((exact + residual.double()).abs().max())
    return {
        "dtype": str(plain.dtype).removeprefix("torch."),
        "plain": float((plain.double() - exact).abs().max()) / scale,
        "residual": float((added.double() - exact - residual.double()).abs().max()) / scale,
    }


def render_errors() -> dict[str, float]:
    """A tiny-preset render with the kernel against the PyTorch decoder, and who ran the layers."""
    G, z_nerf, z_inr = tiny_model()
    calls = count_calls(inr_triton, "modulated_fc")
    out = {}
    for precision in ("float32", "bf16"):
        renders = {}
        for kernel in ("torch", "triton"):
            options = dict(img_size=10, deterministic=True, precision=precision, inr_kernel=kernel)
            with torch.no_grad():
                renders[kernel] = render(G, z_nerf, z_inr, **options)
        out[f"{precision}_img"] = float((renders["torch"].img - renders["triton"].img).abs().max())
        out[f"{precision}_calls"] = len(calls)
        calls.clear()
    return out | with_autograd(G, z_nerf, z_inr, calls, inr_kernel="triton")


def main() -> None:
    result = {"interpreting": inr_triton.interpreting()}
    result["layers"] = {
        f"{name} {str(dtype).removeprefix('torch.')}": layer_errors(*widths, dtype)
        for name, widths in LAYERS.items()
        for dtype in (torch.float32, torch.bfloat16)
    }
    result["render"] = render_errors()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
