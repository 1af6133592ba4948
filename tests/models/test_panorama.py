"""Cylindrical coordinates of the 2D CIPS generator (panoramas, spec 8.3): one turn around the cylinder
later is the same image, the seam blends the embedding's two ends, and the training grid still reads
the stored embeddings."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from cips3d.config_2d import Cips2DConfig, cips2d_preset
from cips3d.errors import ConfigError
from cips3d.models.coordinates import cylinder_grid
from cips3d.models.generator2d import Generator2D


@pytest.fixture(scope="module")
def panorama_G() -> Generator2D:
    config = dataclasses.replace(cips2d_preset("cips-tiny"), coordinates="cylinder")
    return Generator2D(config, torch.Generator().manual_seed(0)).eval()


@pytest.fixture(scope="module")
def w(panorama_G) -> torch.Tensor:
    return panorama_G.mapping(panorama_G.sample_latents(2, torch.Generator().manual_seed(1)))


@torch.no_grad()
def test_one_turn_later_is_the_same_panorama(panorama_G, w):
    here = panorama_G.synthesis(w, cylinder_grid(8, 40, batch=2))
    turned = panorama_G.synthesis(w, cylinder_grid(8, 40, batch=2, start=1.0))  # x + 2: one turn on
    assert here.shape == (2, 3, 8, 40) and here.std() > 0
    assert (here - turned).abs().max() < 1e-4
    # and a window that starts mid-panorama shows the same columns, shifted
    shifted = panorama_G.synthesis(w, cylinder_grid(8, 40, batch=2, start=-1.0 + 2 * 10 / 40))
    assert (shifted[..., :30] - here[..., 10:]).abs().max() < 1e-4
    assert (shifted[..., 30:] - here[..., :10]).abs().max() < 1e-4  # across the seam


@torch.no_grad()
def test_the_panorama_goes_round_without_end_however_far_from_the_origin(panorama_G, w):
    """50,000 turns on is the same image (float32 angles that far lost their fraction: up to 23/255 off),
    and a window there is no longer refused as finer than float32 resolves."""
    here = panorama_G.synthesis(w, cylinder_grid(8, 40, batch=2))
    far = panorama_G.synthesis(w, cylinder_grid(8, 40, batch=2, start=-1.0 + 100_000))
    assert (here - far).abs().max() < 1e-5
    assert torch.equal(panorama_G.window_grid(8, x=1.0), panorama_G.window_grid(8, x=100_001.0))
    panorama_G.window_grid(8, x=999_999.0)  # was: "zoom 0.25 at most there"
    x = cylinder_grid(1, 8, turns=3)[0, 0, :, 0]
    assert x.min() >= -1 and x.max() < 1  # wrapped into [-1, 1)


@torch.no_grad()
def test_the_training_grid_reads_the_stored_embedding_and_the_seam_blends_its_ends(panorama_G, w):
    size = panorama_G.config.size
    stored = panorama_G.synthesis(w)  # the table as is
    sampled = panorama_G.synthesis(w, panorama_G.training_grid(2))  # through the bilinear lookup
    assert stored.shape == (2, 3, size, size) and (stored - sampled).abs().max() < 1e-4
    table = panorama_G.encoding.embedding
    seam = torch.tensor([[[[1 - 1 / size, -1.0]]]])  # halfway between the last column and x = 1 (= -1)
    between = panorama_G.encoding._sample_embedding(seam)[0, 0, 0]
    torch.testing.assert_close(between, (table[:, 0, -1] + table[:, 0, 0]) / 2, rtol=1e-5, atol=1e-5)


def test_the_cylinder_reads_cos_sin_and_y_and_the_config_says_so():
    plane = Generator2D(cips2d_preset("cips-tiny"))
    config = dataclasses.replace(cips2d_preset("cips-tiny"), coordinates="cylinder")
    cylinder = Generator2D(config)
    extra = sum(p.numel() for p in cylinder.parameters()) - sum(p.numel() for p in plane.parameters())
    assert extra == config.fourier_dim  # one more input column of the Fourier layer
    assert Cips2DConfig.from_dict(config.to_dict()) == config
    old = {k: v for k, v in plane.config.to_dict().items() if k != "coordinates"}  # saved before the field
    assert Cips2DConfig.from_dict(old).coordinates == "plane"
    with pytest.raises(ConfigError, match="coordinates must be 'plane' or 'cylinder'"):
        dataclasses.replace(config, coordinates="sphere")
    with pytest.raises(ConfigError, match="turns > 0"):
        cylinder_grid(4, 4, turns=0)


@torch.no_grad()
def test_a_wide_panorama_model_has_a_column_per_pixel_of_the_turn():
    config = dataclasses.replace(cips2d_preset("cips-tiny"), coordinates="cylinder", width=128)
    G = Generator2D(config, torch.Generator().manual_seed(0)).eval()
    assert G.encoding.embedding.shape == (config.embedding_dim, 32, 128) and config.grid_width == 128
    w = G.mapping(G.sample_latents(2, torch.Generator().manual_seed(1)))
    stored = G.synthesis(w)
    assert stored.shape == (2, 3, 32, 128)
    assert (stored - G.synthesis(w, cylinder_grid(32, 128, batch=2))).abs().max() < 1e-4
    table = G.encoding.embedding
    seam = torch.tensor([[[[1 - 1 / 128, 1.0]]]])  # halfway from the last column round to the first
    between = G.encoding._sample_embedding(seam)[0, 0, 0]
    torch.testing.assert_close(between, (table[:, -1, -1] + table[:, -1, 0]) / 2, rtol=1e-5, atol=1e-5)
    assert Cips2DConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="width"):
        dataclasses.replace(config, width=1)


def test_coordinate_grids_refuse_sizes_past_memory_and_extents_that_are_not_one():
    from cips3d.models.coordinates import MAX_GRID_PIXELS, plane_grid  # noqa: PLC0415

    with pytest.raises(ConfigError, match=f"is more than {MAX_GRID_PIXELS:,} pixels at once"):
        plane_grid(10**6, 10**6)  # tried to allocate terabytes
    with pytest.raises(ConfigError, match="extent must be a finite number, got nan"):
        plane_grid(8, 8, extent=math.nan)  # was an all-NaN grid
    with pytest.raises(ConfigError, match="extent must be positive, got -1"):
        plane_grid(8, 8, extent=-1.0)  # was a mirrored image
    with pytest.raises(ConfigError, match="height must be a whole number of 1 or more, got 2.5"):
        cylinder_grid(2.5, 4)
