"""Every fast path against the plain reference path (the official algorithm as written)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from cips3d import Camera, RenderConfig, RenderDraws, fast
from cips3d.fast import (
    MAX_RELATIVE_ERROR,
    configure_fast_paths,
    cuda_matmuls_use_tf32,
    cudnn_convolutions_use_tf32,
    ieee_convolutions,
    tf32_matmuls,
)
from cips3d.nn import FiLMSine, ModulatedLinear
from cips3d.reference import film, reference_images


def test_fast_generator_equals_the_reference_path(small_G):
    z = small_G.sample_latents(3, torch.Generator().manual_seed(0))
    styles = small_G.mapping(*z)
    camera = Camera.from_angles(torch.tensor([1.4, 1.57, 1.8]), torch.tensor([1.5, 1.6, 1.57]))
    render = RenderConfig(img_size=24, chunk_rows=500, nerf_noise=0.5)
    r, s = render.num_rays, render.num_steps
    g = torch.Generator().manual_seed(1)
    draws = RenderDraws(
        jitter_u=torch.rand(3, r, s, generator=g), importance_u=torch.rand(3, r, s, generator=g),
        coarse_noise=torch.randn(3, r, s, generator=g), fine_noise=torch.randn(3, r, 2 * s, generator=g),
    )  # fmt: skip
    with torch.no_grad():
        fast = small_G.synthesis(styles, camera, render, draws=draws).img
    reference = reference_images(small_G, styles, camera, render, draws=draws)
    assert (fast - reference).abs().max() < 1e-4


def test_fast_ffhq_sized_layers_equal_the_reference(tiny_G):
    cfg = RenderConfig(img_size=16, deterministic=True)
    z = tiny_G.sample_latents(2, torch.Generator().manual_seed(2))
    camera = Camera.from_angles(math.pi / 2, math.pi / 2, batch=2)
    styles = tiny_G.mapping(*z)
    with torch.no_grad():
        fast = tiny_G.synthesis(styles, camera, cfg).img
    assert (fast - reference_images(tiny_G, styles, camera, cfg)).abs().max() < 1e-4


def test_folded_film_equals_the_unfolded_formula():
    layer = FiLMSine(5, 7, 6).double()
    layer.reset_parameters(torch.Generator().manual_seed(3))
    x = torch.randn(2, 11, 5, dtype=torch.float64)
    style = torch.randn(2, 6, dtype=torch.float64)
    with torch.no_grad():
        folded_inplace = layer(x, style)
    folded_grad = layer(x, style)
    assert torch.allclose(folded_inplace, film(layer, x, style), atol=1e-12)
    assert torch.allclose(folded_grad, film(layer, x, style), atol=1e-12) and folded_grad.requires_grad


def test_in_place_inference_equals_the_training_computation(tiny_G):
    feature = torch.randn(2, 9, tiny_G.config.nerf.feature_dim, generator=torch.Generator().manual_seed(4))
    styles = tiny_G.mapping(*tiny_G.sample_latents(2, torch.Generator().manual_seed(5)))
    with torch.no_grad():
        inference = tiny_G.decoder(feature, styles)
    training = tiny_G.decoder(feature, styles)
    assert torch.equal(inference, training.detach())


def test_bf16_decoder_stays_within_a_few_percent(tiny_G):
    cfg = RenderConfig(img_size=8, deterministic=True)
    z = tiny_G.sample_latents(2, torch.Generator().manual_seed(6))
    camera = Camera.from_angles(math.pi / 2, math.pi / 2, batch=2)
    styles = tiny_G.mapping(*z)
    with torch.no_grad():
        full = tiny_G.synthesis(styles, camera, cfg).img
        half = tiny_G.synthesis(
            styles, camera, RenderConfig(img_size=8, deterministic=True, precision="bf16")
        ).img
    error = (full - half).abs()
    assert 0 < error.max() < 0.05 and half.dtype == torch.float32


def test_the_matmul_route_is_chosen_only_if_it_stays_float32():
    before = fast._route_setting()  # None on PyTorch before 2.9, which has no such switch
    try:
        info = configure_fast_paths("cpu")
        if before is None:  # nothing to choose: PyTorch's own route, said so
            assert info["matmul_route"] == "default" and "switch" in info["note"]
        else:
            assert info["matmul_route"] in ("oneDNN", "default (MKL)")
            assert all(v["relative_error"] < MAX_RELATIVE_ERROR for v in info["self_test"].values()) or (
                info["matmul_route"] == "default (MKL)"
            )
        a, b = torch.randn(64, 512, dtype=torch.float64), torch.randn(512, 64, dtype=torch.float64)
        err = ((a.float() @ b.float()).double() - a @ b).abs().max() / (a @ b).abs().max()
        assert err < MAX_RELATIVE_ERROR  # whatever was chosen still computes in float32
    finally:
        if before is not None:
            fast._set_route(before)


def test_styles_are_folded_into_weights_once_per_render_not_once_per_chunk(tiny_G, monkeypatch):
    calls = {"inr": 0, "film": 0}
    modulated_weight, fold = ModulatedLinear.modulated_weight, FiLMSine.fold

    def count(kind, original):
        def wrapper(self, style):
            calls[kind] += 1
            return original(self, style)

        return wrapper

    monkeypatch.setattr(ModulatedLinear, "modulated_weight", count("inr", modulated_weight))
    monkeypatch.setattr(FiLMSine, "fold", count("film", fold))
    styles = tiny_G.mapping(*tiny_G.sample_latents(2, torch.Generator().manual_seed(7)))
    camera = Camera.from_angles(math.pi / 2, math.pi / 2, batch=2)
    render = RenderConfig(img_size=8, deterministic=True, chunk_rows=16)  # 8 chunks of rays
    with torch.no_grad():
        tiny_G.synthesis(styles, camera, render)
    assert calls == {"inr": 2 * len(tiny_G.decoder.blocks), "film": len(tiny_G.field.hidden) + 1}


def test_inference_evaluates_the_field_in_cache_sized_blocks_with_the_same_result(tiny_G):
    points = torch.rand(2, 3000, 3, generator=torch.Generator().manual_seed(8)) * 0.24 - 0.12
    styles = tiny_G.mapping(*tiny_G.sample_latents(2, torch.Generator().manual_seed(9)))
    nerf = {name: styles[name] for name in tiny_G.nerf_style_names}
    whole = tiny_G.field(points, nerf)  # autograd on: one block
    with torch.no_grad():
        blocked = tiny_G.field(points, nerf)  # 3000 > 2048 / 2 points per image: three blocks
    for a, b in zip(whole, blocked, strict=True):
        assert a.shape == b.shape and (a.detach() - b).abs().max() < 1e-6


def test_tf32_is_switched_on_only_for_cuda_blocks_and_always_restored():
    assert not cuda_matmuls_use_tf32()  # PyTorch's default: IEEE float32
    with tf32_matmuls(True, "cpu"):
        assert not cuda_matmuls_use_tf32()  # CPUs have no TF32 units: nothing changes
    with tf32_matmuls(False, "cuda"):
        assert not cuda_matmuls_use_tf32()
    with tf32_matmuls(True, "cuda"):  # setting the switch needs no GPU
        assert cuda_matmuls_use_tf32()
    assert not cuda_matmuls_use_tf32()
    with pytest.raises(RuntimeError), tf32_matmuls(True, "cuda:0"):
        raise RuntimeError("a failing render")
    assert not cuda_matmuls_use_tf32()


def test_tf32_reaches_exactly_the_parts_asked_for(tiny_G, monkeypatch):
    """The field's products under field_precision, the INR's under precision; compositing never."""
    import cips3d.models.generator3d as generator3d  # noqa: PLC0415

    seen = []
    real = generator3d.tf32_matmuls

    def spy(enabled, device):
        seen.append(enabled)
        return real(enabled, device)

    monkeypatch.setattr(generator3d, "tf32_matmuls", spy)
    styles = tiny_G.mapping(*tiny_G.sample_latents(1, torch.Generator().manual_seed(10)))
    camera = Camera.from_angles(math.pi / 2, math.pi / 2)
    base = RenderConfig(img_size=6, deterministic=True)
    with torch.no_grad():
        plain = tiny_G.synthesis(styles, camera, base).img
        assert seen == [False, False, False]  # coarse field, fine field, INR
        seen.clear()
        field_only = tiny_G.synthesis(styles, camera, replace(base, field_precision="tf32"))
        assert seen == [True, True, False]
        seen.clear()
        both = tiny_G.synthesis(styles, camera, replace(base, precision="tf32", field_precision="tf32"))
        assert seen == [True, True, True]
    # On a CPU, TF32 settings compute in IEEE float32: the same image bit for bit.
    assert torch.equal(plain, field_only.img) and torch.equal(plain, both.img)


def test_ieee_convolutions_switch_cudnn_off_tf32_for_the_block_only():
    assert cudnn_convolutions_use_tf32()  # PyTorch's default for cuDNN convolutions
    with ieee_convolutions():  # setting the switch needs no GPU
        assert not cudnn_convolutions_use_tf32()
    assert cudnn_convolutions_use_tf32()
    with pytest.raises(RuntimeError), ieee_convolutions():
        raise RuntimeError("a failing step")
    assert cudnn_convolutions_use_tf32()


def test_tf32_uses_the_legacy_switch_on_pytorch_without_fp32_precision(monkeypatch):
    """PyTorch before 2.9 has only `allow_tf32`; the block sets and restores that one instead."""
    from types import SimpleNamespace  # noqa: PLC0415

    legacy = SimpleNamespace(allow_tf32=False)
    monkeypatch.setattr(torch.backends.cuda, "matmul", legacy)
    with tf32_matmuls(True, "cuda"):
        assert legacy.allow_tf32 is True
    assert legacy.allow_tf32 is False and not hasattr(legacy, "fp32_precision")
