"""What the interpreter scripts (interpret_field.py, interpret_inr.py) share: a tiny model, a count of
a kernel's calls, and the check that with autograd on a kernel is not called."""

from __future__ import annotations

import torch

from cips3d import Generator3D, generator_preset
from cips3d.config import RenderConfig


def tiny_model() -> tuple[Generator3D, torch.Tensor, torch.Tensor]:
    """The tiny preset and two latents of it."""
    G = Generator3D(generator_preset("tiny"), generator=torch.Generator().manual_seed(0)).eval()
    return (G, *G.sample_latents(2, torch.Generator().manual_seed(3)))


def count_calls(module, name: str) -> list:
    """Wrap module.name so that each call appends to the returned list (the wrapper stays in place)."""
    calls, original = [], getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    setattr(module, name, counted)
    return calls


def render(G, z_nerf, z_inr, **options):
    """A render of fixed cameras (the same draws every call)."""
    return G(z_nerf, z_inr, render=RenderConfig(**options), generator=torch.Generator().manual_seed(4))


def with_autograd(G, z_nerf, z_inr, calls: list, **kernel) -> dict:
    """With autograd on, a render asking for `kernel` must not call it and must equal the plain one."""
    calls.clear()
    asked = render(G, z_nerf, z_inr, img_size=6, deterministic=True, **kernel)
    plain = render(G, z_nerf, z_inr, img_size=6, deterministic=True)
    return {"calls_with_grad": len(calls), "with_grad_equal": bool(torch.equal(asked.img, plain.img))}
