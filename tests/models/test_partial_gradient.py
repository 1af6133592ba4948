"""Partial-gradient rendering and the frozen-NeRF option of Generator3D.synthesis."""

from __future__ import annotations

import math

import torch

from cips3d import Camera, RenderConfig, RenderDraws

SIZE = 8


def setup(G, seed=0):
    z = G.sample_latents(2, torch.Generator().manual_seed(seed))
    cam = Camera.from_angles(math.pi / 2 + 0.2, math.pi / 2, batch=2)
    return z, cam


def test_partial_gradient_render_equals_the_full_render(small_G):
    z, cam = setup(small_G)
    full_cfg = RenderConfig(img_size=SIZE, chunk_rows=40)
    part_cfg = RenderConfig(img_size=SIZE, chunk_rows=40, grad_rays=20)
    with torch.no_grad():
        full = small_G(*z, camera=cam, render=full_cfg, generator=torch.Generator().manual_seed(3))
    part = small_G(*z, camera=cam, render=part_cfg, generator=torch.Generator().manual_seed(3))
    assert part.img.requires_grad
    for name in ("img", "aux_img", "nerf_feature", "depth"):
        assert torch.allclose(getattr(part, name), getattr(full, name), atol=1e-5, rtol=0), name


def test_gradients_flow_only_through_the_chosen_rays(small_G):
    z, cam = setup(small_G, seed=1)
    order = torch.randperm(SIZE * SIZE, generator=torch.Generator().manual_seed(0))
    cfg = RenderConfig(img_size=SIZE, grad_rays=10, deterministic=True)
    out = small_G(*z, camera=cam, render=cfg, draws=RenderDraws(grad_order=order))
    params = [p for p in small_G.parameters() if p.requires_grad]

    def grad_norm(ray: int) -> float:
        y, x = divmod(ray, SIZE)
        pixel = out.img[:, :, y, x].sum() + out.aux_img[:, :, y, x].sum()
        grads = torch.autograd.grad(pixel, params, retain_graph=True, allow_unused=True)
        return sum(float(g.abs().sum()) for g in grads if g is not None)

    assert all(grad_norm(int(r)) > 0 for r in order[:10])
    assert all(grad_norm(int(r)) == 0 for r in order[10:20])


def test_frozen_nerf_gives_gradients_to_the_decoder_only(small_G):
    z, cam = setup(small_G, seed=2)
    cfg = RenderConfig(img_size=SIZE, deterministic=True)
    styles = small_G.mapping(*z)
    out = small_G.synthesis(styles, cam, cfg, nerf_grad=False)
    assert not out.nerf_feature.requires_grad and not out.aux_img.requires_grad
    small_G.zero_grad()
    out.img.sum().backward()
    assert small_G.decoder.blocks[4].mod1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in small_G.field.parameters())
    assert small_G.aux_head.weight.grad is None
    small_G.zero_grad()
