"""Foveated rendering with the 2D CIPS generator: the interpolated image approaches the full render as
points are added, and is closest to it around the fixation."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from cips3d.config_2d import cips2d_preset
from cips3d.errors import ConfigError
from cips3d.inference.foveated import foveated_image, interpolate_to_grid
from cips3d.models.coordinates import plane_grid
from cips3d.models.generator2d import Generator2D

SIZE = 32


@pytest.fixture(scope="module")
def scene():
    """A smooth image: at initialisation the learned embedding is independent noise per training pixel,
    which no interpolation can follow; zeroed, the Fourier features alone vary, over tens of pixels."""
    G = Generator2D(cips2d_preset("cips-tiny"), torch.Generator().manual_seed(0)).eval()
    with torch.no_grad():
        G.encoding.embedding.zero_()
    w = G.mapping(G.sample_latents(2, torch.Generator().manual_seed(1)))
    with torch.no_grad():
        full = G.synthesis(w, plane_grid(SIZE, SIZE, 2))
    return G, w, full


def test_the_interpolation_is_exact_on_the_points_and_linear_between_them():
    points = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]])
    values = (points[:, 0] * 2 + points[:, 1] * 3 + 1)[None, None]  # a linear function of (x, y)
    grid = interpolate_to_grid(points, values, 5)
    target = plane_grid(5, 5)[0]
    torch.testing.assert_close(grid[0, 0], target[..., 0] * 2 + target[..., 1] * 3 + 1, rtol=0, atol=1e-6)


def test_points_that_make_no_triangle_give_the_nearest_ones_values():
    points = torch.tensor([[-0.5, 0.0], [0.5, 0.0]])  # two points: no triangulation
    grid = interpolate_to_grid(points, torch.tensor([[[1.0, 2.0]]]), 4)
    target = plane_grid(4, 4)[0]
    torch.testing.assert_close(grid[0, 0], torch.where(target[..., 0] < 0, 1.0, 2.0))


def test_more_points_come_closer_to_the_full_render(scene):
    G, w, full = scene
    errors = []
    for count in (200, 3000):
        out = foveated_image(G, w, SIZE, count, sharpness=1.0, generator=torch.Generator().manual_seed(2))
        assert out.image.shape == full.shape and out.points.shape == (count, 2)
        assert out.colours.shape == (2, 3, count)
        errors.append(float((out.image - full).abs().mean()))
    assert errors[1] < 0.6 * errors[0], errors


def test_the_image_is_sharpest_around_the_fixation(scene):
    G, w, full = scene
    out = foveated_image(G, w, SIZE, 600, fixation=(0.5, 0.5), sharpness=3.0,
                         generator=torch.Generator().manual_seed(3))  # fmt: skip
    error = (out.image - full).abs().mean(dim=(0, 1))  # [H, W]
    grid = plane_grid(SIZE, SIZE)[0]
    near = error[(grid - 0.5).abs().amax(-1) < 0.25].mean()  # pixels within 0.25 of the fixation
    far = error[(grid + 0.5).abs().amax(-1) < 0.25].mean()  # ... of the opposite point (-0.5, -0.5)
    assert near < 0.5 * far, (float(near), float(far))
    again = foveated_image(G, w, SIZE, 600, fixation=(0.5, 0.5), sharpness=3.0,
                           generator=torch.Generator().manual_seed(3))  # fmt: skip
    assert torch.equal(out.image, again.image)  # the draws come from the generator


def test_a_model_whose_frames_are_not_square_is_refused():
    """A 4:1 panorama was squashed into a square foveated image (the command refused it; the API did not)."""
    config = dataclasses.replace(cips2d_preset("cips-tiny"), coordinates="cylinder", width=128)
    G = Generator2D(config, torch.Generator().manual_seed(0)).eval()
    w = G.mapping(G.sample_latents(1, torch.Generator().manual_seed(1)))
    with pytest.raises(ConfigError, match="foveated images are square frames; this model's images are not"):
        foveated_image(G, w, SIZE, 50)
