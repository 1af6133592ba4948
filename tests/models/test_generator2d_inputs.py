"""What Generator2D says when a Python caller hands it something it cannot use (torch's own errors
before), and that it runs in another dtype as Generator3D does."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from cips3d import ConfigError
from cips3d.config_2d import cips2d_preset
from cips3d.inference.inversion2d import invert2d
from cips3d.io.checkpoint2d import load_generator2d
from cips3d.models.coordinates import foveated_points, patch_grid
from cips3d.models.generator2d import Generator2D


@pytest.fixture(scope="module")
def G2() -> Generator2D:
    return Generator2D(cips2d_preset("cips-tiny"), torch.Generator().manual_seed(0)).eval()


def test_a_float64_model_renders_its_own_latents_like_the_float32_one(G2):
    G64 = copy.deepcopy(G2).double()
    z = G64.sample_latents(2, torch.Generator().manual_seed(1))
    assert z.dtype == torch.float64
    assert torch.equal(z.float(), G2.sample_latents(2, torch.Generator().manual_seed(1)))
    image = G64(z)
    assert image.dtype == torch.float64 and torch.allclose(image.float(), G2(z.float()), atol=1e-4)
    assert G64.mean_style(num_samples=8).dtype == torch.float64


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda G: G(torch.randn(1, 7)), "z must be [B, D] with B >= 1 and D = "),
        (lambda G: G(torch.randn(G.config.style_dim)), "z must be [B, D] with B >= 1"),
        (lambda G: G(torch.randn(0, G.config.style_dim)), "got [0, "),
        (
            lambda G: G(torch.randn(1, G.config.style_dim).double()),
            "z must be torch.float32 like the model's",
        ),
        (lambda G: G([0.0] * G.config.style_dim), "z must be a torch.Tensor, got list"),
        (lambda G: G.synthesis(torch.randn(1, 5)), "w must be [B, D] or [B, "),
        (lambda G: G.sample_latents(0), "the number of latents must be a whole number of 1 or more"),
        (lambda G: G.mean_style(num_samples=0), "num_samples must be a whole number of 1 or more, got 0"),
        (lambda G: G.mean_style(num_samples="8"), "num_samples must be a whole number of 1 or more, got '8'"),
        (lambda G: G.frame_grid("8"), "height must be a whole number of 1 or more, got '8'"),
        (lambda G: G.frame_grid(8, extent="2"), "extent and turns must be positive"),
        (lambda G: G.window_grid(8, zoom="2"), "zoom must be numbers, got 0.0, 0.0 and '2'"),
        (lambda G: invert2d(G, torch.zeros(1, 3, 8, 8), {}), "config must be an Inversion2DConfig, got dict"),
        (lambda G: invert2d(G, [[0.0]]), "the target image must be a torch.Tensor, got list"),
        (lambda G: load_generator2d(5), "path must be a file or folder path, got int"),
        (lambda G: load_generator2d("x", which="D"), "which must be 'G_ema' or 'G', got 'D'"),  # was: G
        (lambda G: G.synthesis(torch.full((1, G.config.style_dim), math.inf)), "w holds NaN or infinite"),
        (
            lambda G: G.truncate(torch.zeros(1, 4), 2.0, torch.zeros(1, 4)),
            "psi must be a number between 0 and 1",
        ),
        (lambda G: G.truncate(torch.zeros(1, 4), float("nan"), torch.zeros(1, 4)), "got nan"),
        # were rendered as NaN images, and an AttributeError on numpy coordinates:
        (lambda G: G(torch.full((1, G.config.style_dim), math.nan)), "z holds NaN or infinite values"),
        (
            lambda G: G.synthesis(torch.zeros(1, G.config.style_dim), G.frame_grid(8) * math.inf),
            "coords holds NaN or infinite values",
        ),
        (
            lambda G: G.synthesis(torch.zeros(1, G.config.style_dim), G.frame_grid(8).numpy()),
            "coords must be a torch.Tensor, got ndarray",
        ),
    ],
    ids=[
        "width",
        "1-d",
        "batch-0",
        "dtype",
        "list",
        "w-width",
        "no-rows",
        "no-samples",
        "str-samples",
        "str-height",
        "str-extent",
        "str-zoom",
        "dict-config",
        "list-target",
        "int-path",
        "inf-w",
        "which-d",
        "psi-2",
        "psi-nan",
        "nan-z",
        "inf-coords",
        "numpy-coords",
    ],  # fmt: skip
)
def test_unusable_inputs_are_one_config_error(G2, call, words):
    with pytest.raises(ConfigError) as caught:
        call(G2)
    assert words in str(caught.value)


def test_patch_and_foveated_coordinates_refuse_what_they_would_get_wrong():
    with pytest.raises(ConfigError, match="a side and a stride of 1 or more, got 8 and -1"):
        patch_grid(32, 20, 20, 8, stride=-1)  # was: a 6 x 6 patch
    with pytest.raises(ConfigError, match="fixation must lie inside the frame"):
        foveated_points(10, fixation=(0.3,))  # was: read as (0.3, 0.3)
    assert patch_grid(32, 0, 0, 8, stride=2).shape == (1, 8, 8, 2)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda G: Generator2D(G.config, 0), "generator must be a torch.Generator or None, got int (seeded_"),
        (lambda G: G.sample_latents(2, 5), "generator must be a torch.Generator or a list of them, got int"),
        (
            lambda G: G(G.sample_latents(1), noise="random", generator=1),
            "generator must be a torch.Generator",
        ),
        (lambda G: G.truncate(torch.zeros(1, G.config.style_dim), 0.5, torch.zeros(5)), "must be [1, "),
        (lambda G: G(G.sample_latents(1).to("meta")), "z is on meta but the model is on cpu"),
        (lambda G: G(G.sample_latents(1), torch.zeros(1, 4, 0, 2)), "coords must be [1, H >= 1, W >= 1, 2]"),
        (lambda G: G(G.sample_latents(1), torch.zeros(2, 4, 4, 2)), "coords must be [1, H >= 1"),  # B=1 or 1
    ],
    ids=[
        "int-generator-init",
        "int-generator",
        "int-noise-generator",
        "mean-width",
        "meta-z",
        "no-pixel",
        "batch-words",
    ],
)
def test_misuse_found_by_review_is_one_config_error(G2, call, words):
    with pytest.raises(ConfigError) as caught:  # were torch's TypeErrors, AttributeErrors, RuntimeErrors
        call(G2)
    assert words in str(caught.value)


def test_latents_from_one_generator_per_seed_are_each_seeds_own(G2):
    from cips3d.seeding import generators_for_seeds  # noqa: PLC0415

    both = G2.sample_latents(2, generators_for_seeds([3, 4]))  # as the 3D model takes them (a TypeError)
    assert torch.equal(both[1:], G2.sample_latents(1, torch.Generator().manual_seed(4)))
    assert torch.equal(both[:1], G2.sample_latents(1, torch.Generator().manual_seed(3)))
