"""DiffAugment against the official augmented images, its formulas, its draws and its gradients."""

from __future__ import annotations

import pytest
import torch

from cips3d import ConfigError
from cips3d.training.augment import (
    AugmentDraws,
    DiffAugmentConfig,
    adjust_color,
    cutout,
    diff_augment,
    draw_diff_augment,
    translate,
)
from tests.conftest import load_fixture

f64 = torch.float64
OFFICIAL = DiffAugmentConfig()


def images(batch: int = 4, size: int = 16, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=g, dtype=dtype) * 2 - 1


def fixture_calls():
    """(input rows, draws, augmented image) of every recorded sub-discriminator call with DiffAugment."""
    inputs, outputs = load_fixture("official-d", "inputs.pt"), load_fixture("official-d", "outputs.pt")
    calls = []
    for key in ("diffaug_s16_aux_a0.5", "diffaug_s32_aux_a1.0", "diffaug_s64_main_a0.5"):
        case, features = inputs["cases"][key], outputs[key]["features"]
        values = [d["value"] for d in case["rng_draws"]]
        for i, disc in enumerate(("main_disc", "aux_disc")[: len(values) // 7]):
            rows = case["input"][3 * i : 3 * i + 3]
            draws = AugmentDraws.from_official_order(values[7 * i : 7 * i + 7], OFFICIAL)
            calls.append((rows, draws, features[f"{disc}.conv_in.{case['size']}:in"]))
    return calls


def test_official_augmented_images_are_reproduced_bit_for_bit():
    calls = fixture_calls()
    assert len(calls) == 5
    for rows, draws, expected in calls:
        assert torch.equal(diff_augment(rows, OFFICIAL, draws=draws), expected)


def test_official_cutout_ratio_matters():
    """Guard: the fixture distinguishes the 0.2 cutout from the common 0.5."""
    rows, draws, expected = fixture_calls()[2]
    assert not torch.equal(diff_augment(rows, DiffAugmentConfig(cutout_ratio=0.5), draws=draws), expected)


def test_shape_dtype_and_reproducibility_from_the_generator():
    x = images(dtype=f64)
    a = diff_augment(x, OFFICIAL, generator=torch.Generator().manual_seed(7))
    b = diff_augment(x, OFFICIAL, generator=torch.Generator().manual_seed(7))
    c = diff_augment(x, OFFICIAL, generator=torch.Generator().manual_seed(8))
    assert a.shape == x.shape and a.dtype == f64 and a.is_contiguous()
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.isfinite(a).all()


def test_draws_follow_the_official_order_and_ranges():
    g = torch.Generator().manual_seed(0)
    draws = draw_diff_augment(OFFICIAL, 4000, (32, 32), generator=g)
    assert OFFICIAL.draw_names() == ("u_b", "u_s", "u_c", "t_h", "t_w", "o_h", "o_w")
    for name in ("u_b", "u_s", "u_c"):
        value = getattr(draws, name)
        assert value.shape == (4000, 1, 1, 1) and 0 <= value.min() and value.max() < 1
    for name, (low, high) in {"t_h": (-4, 4), "t_w": (-4, 4), "o_h": (0, 32), "o_w": (0, 32)}.items():
        value = getattr(draws, name)
        assert value.shape == (4000, 1, 1) and value.min() == low and value.max() == high, name
    # Odd cutout side (13 at 64 px): the centre range is [0, 64), not [0, 65).
    assert draw_diff_augment(OFFICIAL, 4000, (64, 64), generator=g).o_h.max() == 63


def test_neutral_draws_leave_the_image_unchanged():
    x = images(dtype=f64)
    half = torch.full((4, 1, 1, 1), 0.5, dtype=f64)
    zero = torch.zeros(4, 1, 1, dtype=torch.long)
    assert torch.allclose(adjust_color(x, half, half, half), x, atol=1e-15)
    assert torch.equal(translate(x, zero, zero), x)
    assert torch.equal(cutout(x, zero, zero, (0, 0)), x)


def test_color_shifts_brightness_and_scales_around_the_right_means():
    x = images(dtype=f64)
    u = torch.rand(3, 4, 1, 1, 1, generator=torch.Generator().manual_seed(1), dtype=f64)
    half = torch.full_like(u[0], 0.5)
    bright = adjust_color(x, u[0], half, half)
    assert torch.allclose(bright - x, (u[0] - 0.5).expand_as(x), atol=1e-15)
    saturated = adjust_color(x, half, u[1], half)
    assert torch.allclose(saturated.mean(1), x.mean(1), atol=1e-14)  # per-pixel grey kept
    assert torch.allclose(
        saturated - saturated.mean(1, keepdim=True), (x - x.mean(1, keepdim=True)) * 2 * u[1]
    )
    contrasted = adjust_color(x, half, half, u[2])
    assert torch.allclose(contrasted.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-14)  # image mean kept


def test_translation_reads_shifted_pixels_and_fills_zeros():
    x = images(batch=3, size=8, dtype=f64)
    t_h, t_w = torch.tensor([2, -3, 0]).view(3, 1, 1), torch.tensor([-1, 0, 8]).view(3, 1, 1)
    y = translate(x, t_h, t_w)
    for b in range(3):
        for i in range(8):
            for j in range(8):
                si, sj = i + int(t_h[b]), j + int(t_w[b])
                inside = 0 <= si < 8 and 0 <= sj < 8
                assert torch.equal(y[b, :, i, j], x[b, :, si, sj] if inside else torch.zeros(3, dtype=f64))
    assert not y[2].any()  # a shift by the full width leaves nothing


def test_translation_and_cutout_only_move_or_zero_values():
    """The geometric parts keep the value range: every output is an input value of that image or 0."""
    x = images(batch=2, size=16)
    y = diff_augment(
        x, DiffAugmentConfig(policy="translation,cutout"), generator=torch.Generator().manual_seed(3)
    )
    for b in range(2):
        allowed = torch.cat([x[b].flatten(), torch.zeros(1)])
        assert torch.isin(y[b].flatten(), allowed).all()
        assert y[b].min() >= -1 and y[b].max() <= 1


def test_cutout_zeroes_a_k_by_k_square_clipped_at_the_edge():
    x = torch.ones(3, 2, 16, 16)
    o_h, o_w = torch.tensor([8, 0, 15]).view(3, 1, 1), torch.tensor([8, 8, 15]).view(3, 1, 1)
    k = OFFICIAL.cutout_size(16)
    assert k == 3
    y = cutout(x, o_h, o_w, (k, k))
    zeroed = (y[:, 0] == 0).sum((1, 2)).tolist()
    assert zeroed == [9, 6, 4]  # inside; clipped at the top; clipped at the bottom-right corner
    assert torch.equal(y[0, 0, 7:10, 7:10], torch.zeros(3, 3)) and y[0, 0, 6, 8] == 1
    assert DiffAugmentConfig(cutout_ratio=0.5).cutout_size(16) == 8


def test_augmentation_is_twice_differentiable_in_the_image():
    """R1 is taken through the augmentation, so it needs first and second derivatives."""
    x = images(batch=2, size=8, dtype=f64).requires_grad_()
    draws = draw_diff_augment(OFFICIAL, 2, (8, 8), generator=torch.Generator().manual_seed(4), dtype=f64)

    def f(v):
        return diff_augment(v, OFFICIAL, draws=draws).square()

    assert torch.autograd.gradcheck(f, (x,), fast_mode=True)
    assert torch.autograd.gradgradcheck(f, (x,), fast_mode=True)


def test_config_and_draw_errors():
    assert DiffAugmentConfig(policy="color, cutout").policy == ("color", "cutout")
    with pytest.raises(ConfigError, match="policy"):
        DiffAugmentConfig(policy="color,zoom")
    with pytest.raises(ConfigError, match="policy"):
        DiffAugmentConfig(policy=("color", "color"))
    with pytest.raises(ConfigError, match="cutout_ratio"):
        DiffAugmentConfig(cutout_ratio=1.5)
    with pytest.raises(ValueError, match="makes 7 draws"):
        AugmentDraws.from_official_order([torch.zeros(1)] * 6, OFFICIAL)
    with pytest.raises(ValueError, match="lack 'o_h'"):
        diff_augment(
            images(batch=1),
            OFFICIAL,
            draws=AugmentDraws(*[torch.zeros(1, 1, 1, 1)] * 3, *[torch.zeros(1, 1, 1, dtype=torch.long)] * 2),
        )
    with pytest.raises(ValueError, match="3 values for 1 images"):
        diff_augment(
            images(batch=1), DiffAugmentConfig(policy="color"), draws=AugmentDraws(*[torch.zeros(3)] * 3)
        )
