"""Image error of reduced-precision matrix products, emulated on a CPU (no GPU needed).

A tensor core multiplies operands rounded to fewer mantissa bits (TF32: 10, bfloat16: 7) and accumulates
in float32. This script rounds the operands of every product of the NeRF field, of the INR, or of both
(round to nearest even), keeps float32 everywhere else, and reports the image and depth error against
plain float32. It answers, before any GPU run, which parts of the model can use which arithmetic:
`--field-precision tf32` and `--precision tf32/bf16`. (The real bf16 INR also rounds the products'
outputs; `bench.py` measures that where bf16 runs fast.)

Two versions of the `ffhq` network at its random initialisation: as drawn (thin density: most rays end on
the far shell) and with a dense density (the raw-sigma head scaled x30 and shifted by +37, as in the
official dense fixture), where surfaces form and importance sampling matters.

    python benchmarks/precision_emulation.py   # prints a table, writes benchmarks/precision-emulation.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

from cips3d import Camera, Generator3D, RenderConfig, generator_preset

MANTISSA_BITS = {"tf32": 10, "bf16": 7}
PRODUCTS = {torch.bmm, torch.baddbmm, torch.nn.functional.linear, torch.matmul, torch.mm, torch.addmm}
SETTINGS = {  # name: (field operands, INR operands)
    "tf32 field": ("tf32", None),
    "bf16 field": ("bf16", None),
    "tf32 INR": (None, "tf32"),
    "bf16 INR": (None, "bf16"),
    "tf32 field + bf16 INR": ("tf32", "bf16"),
}


def round_mantissa(x: torch.Tensor, bits: int) -> torch.Tensor:
    """float32 values rounded to `bits` mantissa bits (round to nearest, ties to even), as float32."""
    drop = 23 - bits
    i = x.contiguous().view(torch.int32)
    i = (i + ((i >> drop) & 1) + ((1 << (drop - 1)) - 1)) & ~((1 << drop) - 1)
    return i.view(torch.float32)


class RoundedProducts(TorchFunctionMode):
    """Within the block, the operands (not the bias) of every float32 matrix product are rounded."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = bits

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in PRODUCTS:
            first = 1 if func in (torch.baddbmm, torch.addmm) else 0  # skip the added bias
            args = tuple(
                round_mantissa(a, self.bits) if first <= k < first + 2 and _is_f32(a) else a
                for k, a in enumerate(args)
            )
        return func(*args, **(kwargs or {}))


def _is_f32(a) -> bool:
    return isinstance(a, torch.Tensor) and a.dtype == torch.float32


def _rounded(forward, precision: str | None):
    if precision is None:
        return forward

    def wrapped(*args, **kwargs):
        with RoundedProducts(MANTISSA_BITS[precision]):
            return forward(*args, **kwargs)

    return wrapped


@torch.no_grad()
def errors(G: Generator3D, size: int, batch: int) -> dict[str, dict[str, float]]:
    styles = G.mapping(*G.sample_latents(batch, torch.Generator().manual_seed(1)))
    yaw = math.pi / 2 + torch.linspace(-0.3, 0.3, batch)
    camera = Camera.from_angles(yaw, math.pi / 2 - 0.05)
    render = RenderConfig(img_size=size, deterministic=True)
    exact = G.synthesis(styles, camera, render)
    rows = {}
    for name, (field, inr) in SETTINGS.items():
        G.field.forward = _rounded(type(G.field).forward.__get__(G.field), field)
        G.decoder.forward = _rounded(type(G.decoder).forward.__get__(G.decoder), inr)
        try:
            out = G.synthesis(styles, camera, render)
        finally:
            del G.field.forward, G.decoder.forward  # back to the class methods
        image, depth = (out.img - exact.img).abs(), (out.depth - exact.depth).abs()
        rows[name] = {
            "img_max_abs": float(image.max()),
            "img_mean_abs": float(image.mean()),
            "depth_max_abs": float(depth.max()),
        }
    rows["(float32 image std)"] = {"img_max_abs": float(exact.img.std())}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--out", default=str(Path(__file__).with_name("precision-emulation.json")))
    args = parser.parse_args()
    G = Generator3D(generator_preset("ffhq")).eval()
    results = {"thin density (as drawn)": errors(G, args.size, args.batch)}
    with torch.no_grad():
        G.field.sigma.weight.mul_(30.0)
        G.field.sigma.bias.add_(37.0)
    results["dense density"] = errors(G, args.size, args.batch)
    print("| model | products rounded | image max abs | image mean abs | depth max abs |")
    print("|---|---|---|---|---|")
    for model, rows in results.items():
        for name, r in rows.items():
            cells = [
                f"{r[k]:.2e}" if k in r else "" for k in ("img_max_abs", "img_mean_abs", "depth_max_abs")
            ]
            print(f"| {model} | {name} | " + " | ".join(cells) + " |")
    record = {"size": args.size, "batch": args.batch, "torch": torch.__version__, "results": results}
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
