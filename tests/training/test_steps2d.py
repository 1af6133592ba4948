"""One 2D CIPS training iteration: multi-scale patches and their coordinates, descent steps for D and G,
lazy R1 on schedule, and StyleGAN2's optimiser and EMA constants."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch

from cips3d.config_2d import Cips2DDiscriminatorConfig, cips2d_discriminator_preset, cips2d_preset
from cips3d.errors import ConfigError
from cips3d.models.coordinates import patch_grid
from cips3d.models.discriminator2d import Discriminator2D
from cips3d.models.generator2d import Generator2D
from cips3d.training.losses import d_logistic_loss, g_nonsaturating_loss
from cips3d.training.steps2d import (
    Cips2DTrainSettings,
    d_step_2d,
    discriminator_input,
    g_step_2d,
    multiscale_patches,
    patch_scales,
)


@pytest.fixture()
def models():
    G = Generator2D(cips2d_preset("cips-tiny"), torch.Generator().manual_seed(0))
    D = Discriminator2D(Cips2DDiscriminatorConfig(size=16, max_channels=32), torch.Generator().manual_seed(1))
    return G, D


def reals(batch: int = 4, size: int = 32) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(2)) * 2 - 1


def test_patches_are_strided_crops_and_their_coordinates_are_those_pixels():
    images = reals()
    strides = set()
    for seed in range(12):
        patches, coords = multiscale_patches(images, 16, torch.Generator().manual_seed(seed))
        assert patches.shape == (4, 3, 16, 16) and coords.shape == (4, 16, 16, 2)
        step = coords[0, 0, 1, 0] - coords[0, 0, 0, 0]  # x distance of neighbouring patch pixels
        stride = round(float(step) * 31 / 2)
        strides.add(stride)
        for i in range(4):  # find where the patch starts from its first coordinate
            left, top = (round((float(v) + 1) * 31 / 2) for v in coords[i, 0, 0])
            assert torch.equal(coords[i : i + 1], patch_grid(32, top, left, 16, stride))
            assert torch.equal(patches[i], images[i, :, top : top + 15 * stride + 1 : stride,
                                                  left : left + 15 * stride + 1 : stride])  # fmt: skip
    assert strides == {1, 2}  # the scales of 32 px images in 16 px patches
    whole, coords = multiscale_patches(images, 32)
    assert torch.equal(whole, images) and torch.equal(coords[0], patch_grid(32, 0, 0, 32)[0])
    with pytest.raises(ConfigError, match="power of two"):
        multiscale_patches(images, 12)


def test_a_d_step_lowers_the_d_loss_and_r1_comes_every_r1_every_iterations(models):
    G, D = models
    settings = Cips2DTrainSettings(lr=0.002, r1_every=4)
    opt_g, opt_d = settings.optimizers(G, D)
    patches, coords = multiscale_patches(reals(), 16, torch.Generator().manual_seed(0))

    def d_loss() -> float:
        with torch.no_grad():
            fakes = G(G.sample_latents(4, torch.Generator().manual_seed(9)), coords, noise="random",
                      generator=torch.Generator().manual_seed(9))  # fmt: skip
            return float(d_logistic_loss(D(patches), D(fakes)))

    before = d_loss()
    stats = [d_step_2d(G, D, opt_d, patches, coords, settings, torch.Generator().manual_seed(9), i)
             for i in range(5)]  # fmt: skip
    assert d_loss() < before
    assert [("r1" in s) for s in stats] == [True, False, False, False, True]
    assert all(math.isfinite(s["d_loss"]) for s in stats) and stats[0]["r1"] >= 0


def test_a_g_step_lowers_the_g_loss_and_leaves_d_alone(models):
    G, D = models
    settings = Cips2DTrainSettings()
    opt_g, _ = settings.optimizers(G, D)
    _, coords = multiscale_patches(reals(), 16, torch.Generator().manual_seed(1))
    D_before = copy.deepcopy(D.state_dict())

    def g_loss() -> float:
        with torch.no_grad():
            fakes = G(G.sample_latents(4, torch.Generator().manual_seed(5)), coords, noise="random",
                      generator=torch.Generator().manual_seed(5))  # fmt: skip
            return float(g_nonsaturating_loss(D(fakes)))

    before = g_loss()
    g_step_2d(G, D, opt_g, coords, settings, torch.Generator().manual_seed(5))
    assert g_loss() < before
    assert all(torch.equal(v, D.state_dict()[k]) for k, v in D_before.items())
    assert all(p.grad is None and p.requires_grad for p in D.parameters())


def test_the_discriminator_can_read_the_coordinates_too(models):
    G, _ = models
    D5 = Discriminator2D(Cips2DDiscriminatorConfig(size=16, max_channels=32, input_channels=5))
    patches, coords = multiscale_patches(reals(), 16, torch.Generator().manual_seed(3))
    both = discriminator_input(D5, patches, coords)
    assert both.shape == (4, 5, 16, 16) and torch.equal(both[:, 3], coords[..., 0])
    settings = Cips2DTrainSettings()
    _, opt_d = settings.optimizers(G, D5)
    assert math.isfinite(d_step_2d(G, D5, opt_d, patches, coords, settings, None, 0)["d_loss"])


def test_stylegan2s_lazy_ratios_and_ema_decay():
    settings = Cips2DTrainSettings()
    G = Generator2D(cips2d_preset("cips-tiny"))
    D = Discriminator2D(cips2d_discriminator_preset("cips-tiny"))
    opt_g, opt_d = settings.optimizers(G, D)
    assert opt_g.defaults["lr"] == pytest.approx(0.002 * 4 / 5)  # spec 8.2: 0.0016
    assert opt_g.defaults["betas"] == pytest.approx((0.0, 0.99 ** (4 / 5)))
    assert opt_d.defaults["lr"] == pytest.approx(0.002 * 16 / 17)
    assert opt_d.defaults["betas"] == pytest.approx((0.0, 0.99 ** (16 / 17)))
    assert settings.ema_decay == pytest.approx(0.99778, abs=1e-5)
    with pytest.raises(ConfigError, match="r1_every >= 1"):
        Cips2DTrainSettings(r1_every=0)


@torch.no_grad()
def test_panorama_patches_cross_the_seam_and_the_generator_renders_exactly_them():
    config = dataclasses.replace(cips2d_preset("cips-tiny"), coordinates="cylinder", width=128)
    G = Generator2D(config, torch.Generator().manual_seed(0)).eval()
    z = G.sample_latents(4, torch.Generator().manual_seed(1))
    full = G(z)  # [4, 3, 32, 128]: the model's own panoramas stand in for the data
    grid = G.training_grid()[0]
    crossed, strides = 0, set()
    for seed in range(10):
        patches, coords = multiscale_patches(full, 16, torch.Generator().manual_seed(seed), grid, wrap=True)
        assert patches.shape == (4, 3, 16, 16)
        assert (G(z, coords) - patches).abs().max() < 1e-4  # each patch is its pixels of the panorama
        x = coords[..., 0]
        crossed += int((x[:, :, 1:] < x[:, :, :-1]).any(dim=(1, 2)).sum())  # x falls back at the seam
        strides.add(round(float(x[0, 0, 1] - x[0, 0, 0]) * 128 / 2) % 128)
    assert crossed > 0 and strides == {1, 2}
    flat, _ = multiscale_patches(full, 16, torch.Generator().manual_seed(0))  # no wrap: inside the frame
    assert flat.shape == (4, 3, 16, 16)


def test_patch_sizes_follow_the_shorter_side():
    assert [patch_scales(32, 128, p) for p in (32, 16, 8)] == [0, 1, 2]
    with pytest.raises(ConfigError, match=r"shorter side \(32 px of 128x32\) over a power of two, not 12"):
        patch_scales(32, 128, 12)
    with pytest.raises(ConfigError, match="not \\[32, 128, 2\\]"):
        multiscale_patches(torch.zeros(1, 3, 32, 128), 16, grid=torch.zeros(32, 32, 2))
