"""The 2D CIPS generator: the official parameter count, pixels independent of each other (patches,
denser grids and scattered points render the same colours), noise, and its layers' arithmetic."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.nn import functional as F

from cips3d.config_2d import Cips2DConfig, cips2d_preset
from cips3d.errors import ConfigError
from cips3d.models.coordinates import foveated_points, patch_grid, plane_grid
from cips3d.models.generator2d import Generator2D
from cips3d.nn.equalized import EqualLinear
from cips3d.nn.modulated import modulate_weight


@pytest.fixture(scope="module")
def tiny2d() -> Generator2D:
    return Generator2D(cips2d_preset("cips-tiny"), torch.Generator().manual_seed(0)).eval()


@pytest.fixture(scope="module")
def z(tiny2d) -> torch.Tensor:
    return tiny2d.sample_latents(2, torch.Generator().manual_seed(1))


def test_the_official_network_has_the_official_parameter_count():
    G = Generator2D(cips2d_preset("cips-256"))
    assert sum(p.numel() for p in G.parameters()) == 44_317_092  # spec 8.1, CIPSskip-256
    assert sum(p.numel() for p in G.mapping.parameters()) == 2_101_248
    assert G.encoding.embedding.numel() == 33_554_432
    assert len(G.pairs) == 7 and len(G.to_rgb) == 7


@torch.no_grad()
def test_a_patch_of_the_grid_renders_that_patch_of_the_image(tiny2d, z):
    full = tiny2d(z)
    assert full.shape == (2, 3, 32, 32) and full.std() > 0.1
    coords = patch_grid(32, top=5, left=7, patch=8, stride=2).expand(2, -1, -1, -1)
    patch = tiny2d(z, coords)
    assert torch.allclose(patch, full[:, :, 5:20:2, 7:22:2], atol=1e-5)


@torch.no_grad()
def test_one_grid_serves_a_batch_of_styles(tiny2d, z):
    """A grid of batch 1 with w of batch 2 was refused: every caller expanded it by hand."""
    grid = patch_grid(32, top=5, left=7, patch=8, stride=2)
    assert grid.shape[0] == 1
    assert torch.equal(tiny2d(z, grid), tiny2d(z, grid.expand(2, -1, -1, -1)))


@torch.no_grad()
def test_a_denser_grid_keeps_the_training_pixels(tiny2d, z):
    full = tiny2d(z)
    dense = tiny2d(z, plane_grid(63, 63, batch=2))  # every other pixel is a training pixel
    assert dense.shape == (2, 3, 63, 63)
    # linspace(-1, 1, 63)[2i] and linspace(-1, 1, 32)[i] differ in the last bit: about 2e-5 here
    assert torch.allclose(dense[:, :, ::2, ::2], full, atol=1e-4)


@torch.no_grad()
def test_scattered_points_render_the_colour_of_their_position(tiny2d, z):
    points = foveated_points(500, fixation=(0.2, -0.3), generator=torch.Generator().manual_seed(2))
    xy = points[0, :, 0]
    assert xy.abs().max() <= 1
    near = ((xy - torch.tensor([0.2, -0.3])).abs() < 0.25).all(dim=-1).float().mean()
    assert near > 2 * 0.25**2  # the square of side 0.5 around the fixation: 1/16 of points if uniform
    colours = tiny2d(z[:1], points)  # [1, 3, 500, 1]
    on_grid = plane_grid(32, 32)[0, 9:12, 20:23].reshape(1, 9, 1, 2)  # nine training pixels
    full = tiny2d(z[:1])
    assert colours.shape == (1, 3, 500, 1)
    assert torch.allclose(
        tiny2d(z[:1], on_grid)[0, :, :, 0], full[0, :, 9:12, 20:23].reshape(3, 9), atol=1e-5
    )


@torch.no_grad()
def test_noise_is_drawn_from_the_generator_and_weighted_by_the_learned_scalars(tiny2d, z):
    quiet = tiny2d(z, noise="none")
    assert torch.equal(
        tiny2d(z, noise="random", generator=torch.Generator().manual_seed(0)), quiet
    )  # weights 0
    noisy = Generator2D(tiny2d.config, torch.Generator().manual_seed(0)).eval()
    for module in noisy.modules():
        if hasattr(module, "noise_weight"):
            module.noise_weight.fill_(0.5)
    a = noisy(z, noise="random", generator=torch.Generator().manual_seed(3))
    b = noisy(z, noise="random", generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.allclose(a, noisy(z, noise="none"))


def test_the_equalised_learning_rate_and_the_style_offsets():
    layer = EqualLinear(8, 4, lr_mul=0.01, bias_init=1.0)
    layer.reset_parameters(torch.Generator().manual_seed(0))
    assert torch.all(layer.bias == 1.0) and layer.weight.std() > 10  # N(0, 1) / lr_mul
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(5))
    expected = F.linear(x, layer.weight * 0.01 / math.sqrt(8), layer.bias * 0.01)
    assert torch.allclose(layer(x), expected)
    g = torch.Generator().manual_seed(4)
    weight, style = torch.randn(5, 4, generator=g), torch.rand(2, 5, generator=g) + 0.5
    plain = weight[None] * style[:, :, None]
    assert torch.equal(modulate_weight(weight, style, style_offset=0.0, demodulate=False), plain)
    unit = modulate_weight(weight, style, style_offset=0.0)
    assert torch.allclose(unit.square().sum(1), torch.ones(2, 4), atol=1e-5)


def test_bad_configs_and_coordinates_are_config_errors(tiny2d, z):
    with pytest.raises(ConfigError, match="unknown 2D CIPS preset"):
        cips2d_preset("cips-1024")
    with pytest.raises(ConfigError, match="positive widths"):
        Cips2DConfig(widths=())
    with pytest.raises(ConfigError, match="embedding_align_corners must be true or false, not 'no'"):
        Cips2DConfig.from_dict(tiny2d.config.to_dict() | {"embedding_align_corners": "no"})
    with pytest.raises(ConfigError, match="coords must be"):
        tiny2d(z, plane_grid(4, 4, batch=3))
    with pytest.raises(ConfigError, match="leaves the 32-px grid"):
        patch_grid(32, top=30, left=0, patch=4)
    assert Cips2DConfig.from_dict(tiny2d.config.to_dict()) == tiny2d.config


def test_truncation_pulls_styles_towards_the_mean_of_the_mapping(tiny2d):
    mean = tiny2d.mean_style(num_samples=5, seed=9, batch=2)  # three batches: 2 + 2 + 1
    z = tiny2d.sample_latents(5, torch.Generator().manual_seed(9))
    with torch.no_grad():
        torch.testing.assert_close(mean, tiny2d.mapping(z).mean(0, keepdim=True), atol=1e-6, rtol=1e-6)
        w = tiny2d.mapping(tiny2d.sample_latents(2, torch.Generator().manual_seed(1)))
    assert torch.equal(tiny2d.truncate(w, 1.0, mean), w)
    torch.testing.assert_close(tiny2d.truncate(w, 0.0, mean), mean.expand_as(w))
    torch.testing.assert_close(tiny2d.truncate(w, 0.5, mean), (w + mean) / 2)


@pytest.mark.parametrize("coords", ["training grid", "denser grid"])
def test_chunks_of_pixels_render_the_same_image(tiny2d, z, coords):
    """Pixels are independent: 37 at a time (chunks that cut rows) gives the whole image, noise too."""
    G = copy.deepcopy(tiny2d)
    with torch.no_grad():
        for layer in (G.first, *(fc for pair in G.pairs for fc in pair)):
            layer.noise_weight.fill_(0.5)  # so that the noise shows
    grid = None if coords == "training grid" else plane_grid(45, 45, z.shape[0], 1.2)
    with torch.no_grad():
        w = G.mapping(z)
        whole = G.synthesis(w, grid, "random", torch.Generator().manual_seed(4))
        chunked = G.synthesis(w, grid, "random", torch.Generator().manual_seed(4), chunk_pixels=37)
        quiet = G.synthesis(w, grid, chunk_pixels=37)
    assert whole.shape == chunked.shape and (quiet - whole).abs().max() > 1e-2
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=1e-6)
    for wrong in (0, 2.5):
        with pytest.raises(
            ConfigError, match=f"chunk_pixels must be a whole number of 1 or more, got {wrong}"
        ):
            G.synthesis(w, grid, chunk_pixels=wrong)
