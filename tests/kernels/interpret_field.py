"""Run the fused field kernel in Triton's interpreter and print how far it is from the PyTorch field.

`python -m tests.kernels.interpret_field` with TRITON_INTERPRET=1 set (test_field_triton.py does it: the
variable must be set before triton is imported). Prints one JSON object.
"""

from __future__ import annotations

import json

import torch

from cips3d import generator_preset
from cips3d.config import NerfFieldConfig
from cips3d.kernels import field_triton
from cips3d.models.nerf_field import NerfField
from tests.kernels.interpreted_renders import count_calls, render, tiny_model, with_autograd

FIELDS = {
    "ffhq": NerfFieldConfig(),
    "tiny": generator_preset("tiny").nerf,
    "one-layer": NerfFieldConfig(hidden_layers=1),
    "three-layers": NerfFieldConfig(hidden_layers=3),
}


def field_errors(config: NerfFieldConfig) -> dict[str, float]:
    """150 points of two images (not a multiple of the block: the masks are exercised)."""
    field = NerfField(config)
    field.reset_parameters(torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    styles = {name: torch.randn(2, config.style_dim, generator=g) for name in field.style_names}
    points = (torch.rand(2, 150, config.in_dim, generator=g) - 0.5) * 0.24
    with torch.no_grad():
        feature, sigma = field(points, styles)
        fused_feature, fused_sigma = field.fused(points, styles)
    return {
        "feature": float((fused_feature - feature).abs().max()),
        "sigma": float((fused_sigma - sigma).abs().max()),
        "scale": float(feature.abs().max()),
    }


def render_errors() -> dict[str, float]:
    """A tiny-preset render through the kernel against the PyTorch field, and who ran the field."""
    G, z_nerf, z_inr = tiny_model()
    calls = count_calls(field_triton, "fused_field")
    out = {}
    for name, deterministic in (("deterministic", True), ("stochastic", False)):
        renders = {}
        for kernel in ("torch", "triton"):
            with torch.no_grad():
                renders[kernel] = render(G, z_nerf, z_inr, img_size=12, deterministic=deterministic,
                                         field_kernel=kernel)  # fmt: skip
        a, b = renders["torch"], renders["triton"]
        out[f"{name}_img"] = float((a.img - b.img).abs().max())
        out[f"{name}_aux"] = float((a.aux_img - b.aux_img).abs().max())
        out[f"{name}_depth"] = float((a.depth - b.depth).abs().max())
    out["calls_without_grad"] = len(calls)
    return out | with_autograd(G, z_nerf, z_inr, calls, field_kernel="triton")


def main() -> None:
    result = {"interpreting": field_triton.interpreting()}
    result["fields"] = {name: field_errors(config) for name, config in FIELDS.items()}
    result["render"] = render_errors()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
