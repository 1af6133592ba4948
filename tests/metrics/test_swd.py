"""SWD: zero for identical sets, growing with a shift, deterministic."""

from __future__ import annotations

import pytest
import torch

from cips3d.metrics.swd import describe_swd, laplacian_pyramid, swd


def images(seed: int, n: int = 64, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_identical_sets_give_zero():
    a = images(0)
    assert swd(a, a.clone()).mean == 0.0


def test_swd_grows_with_a_shift():
    a, b = images(0), images(1)
    values = [swd(a, (b + shift).clamp(-1, 1)).mean for shift in (0.0, 0.2, 0.5)]
    assert values[0] < values[1] < values[2]
    assert swd(a, b).mean == swd(a, b).mean  # deterministic for a seed


def test_pyramid_levels_reconstruct_the_image():
    x = images(2, n=2)
    levels = laplacian_pyramid(x)
    assert [lv.shape[-1] for lv in levels] == [32, 16]
    up = torch.nn.functional.interpolate(levels[1], size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(levels[0] + up, x, atol=1e-6)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError):
        swd(images(0, size=32), images(0, size=16))


def test_wide_images_stop_at_their_shorter_side():
    wide = torch.rand(2, 3, 32, 128, generator=torch.Generator().manual_seed(3))
    assert [tuple(lv.shape[-2:]) for lv in laplacian_pyramid(wide)] == [(32, 128), (16, 64)]
    a, b = wide, torch.rand(2, 3, 32, 128, generator=torch.Generator().manual_seed(4))
    assert swd(a, a.clone()).mean == 0.0 < swd(a, b).mean


@pytest.mark.parametrize("height, width", [(64, 64), (32, 128), (33, 70), (16, 16), (8, 8), (4, 6)])
def test_the_protocol_text_names_the_levels_and_patches_swd_uses(height, width):
    images = torch.zeros(1, 3, height, width)
    sides = [min(level.shape[-2:]) for level in laplacian_pyramid(images)]
    text = describe_swd(height, width)
    assert text.startswith(f"Laplacian pyramid {' -> '.join(map(str, sides))} px (short side), ")
    patch = min(7, sides[-1])
    assert f", {patch}x{patch} patches, 128 per image, 512 x 4 projections, x1e3" in text
    assert ("not comparable with scores of larger images" in text) == (min(height, width) < 16)


def test_image_sets_it_cannot_compare_are_named():
    from cips3d.errors import ConfigError  # noqa: PLC0415

    a = torch.rand(4, 3, 16, 16)
    cases = [
        ((a * float("nan"), a), "the first image set holds NaN or infinite values"),  # was a score of nan
        ((a[:0], a[:0]), r"the first image set must be \[N, C, H, W\] with N >= 1, got \[0, 3, 16, 16\]"),
        ((a[0], a[0]), r"must be \[N, C, H, W\]"),  # was "not enough values to unpack"
        ((a.numpy(), a), "the first image set must be a torch.Tensor, got ndarray"),
        ((a, torch.rand(4, 3, 8, 8)), "image sets differ in shape"),
    ]
    for (x, y), message in cases:
        with pytest.raises(ConfigError, match=message):
            swd(x, y)
