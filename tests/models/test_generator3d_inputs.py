"""What Generator3D says when a Python caller hands it something it cannot use: one ConfigError
naming the cause (it used to be torch's own errors, or misleading words)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from cips3d import Camera, ConfigError, RenderConfig, generators_for_seeds

RENDER = RenderConfig(img_size=4, deterministic=True)


def test_latents_come_in_the_models_dtype_and_a_seed_gives_the_same_ones(tiny_G):
    G64 = copy.deepcopy(tiny_G).double()
    z32 = tiny_G.sample_latents(2, torch.Generator().manual_seed(3))
    z64 = G64.sample_latents(2, torch.Generator().manual_seed(3))
    assert z64[0].dtype == torch.float64 and torch.equal(z64[0].float(), z32[0])
    G64.update_truncation_mean(num_samples=8)  # draws latents: raised a dtype RuntimeError before
    assert (
        G64(*z64, camera=Camera.from_angles(1.5, 1.5, batch=2).to("cpu", torch.float64), render=RENDER)
        .img.isfinite()
        .all()
    )


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda G: G.sample_latents(0), "a whole number of 1 or more rows, got 0"),
        (lambda G: G.sample_latents(4, generators_for_seeds([1, 2])), "got 2 generators for 4 images"),
        (lambda G: G.sample_latents(2, 5), "generator must be a torch.Generator or a list of them, got int"),
        (lambda G: G.update_truncation_mean(num_samples=0), "num_samples and batch of 1 or more"),
        (lambda G: G(np.zeros((1, 16), np.float32), torch.zeros(1, 32)), "z_nerf must be a torch.Tensor"),
        (lambda G: G(*G.sample_latents(2), psi=torch.tensor([0.5, 1.0])), "psi must be a number between"),
        (lambda G: G(*G.sample_latents(2), generator=generators_for_seeds([1])), "got 1 generators for 2"),
        (lambda G: G(*G.sample_latents(1), psi=0.5, truncation_mean={}), "truncation_mean lack the layers"),
    ],
    ids=["no-rows", "too-few-generators", "int-generator", "no-samples", "numpy", "psi-tensor",
         "one-generator-two-images", "partial-mean"],
)  # fmt: skip
def test_unusable_inputs_are_one_config_error(tiny_G, call, words):
    with pytest.raises(ConfigError) as caught:
        call(tiny_G)
    assert words in str(caught.value)


def test_styles_of_the_wrong_shape_or_dtype_say_what_they_are(tiny_G):
    styles = tiny_G.mapping(*tiny_G.sample_latents(1))
    camera = Camera.from_angles(1.5, 1.5)
    name = tiny_G.nerf_style_names[0]
    width = styles[name].shape[-1]
    with pytest.raises(
        ConfigError, match=rf"the styles of {name} are \[1, 1, {width}\] where this model's are"
    ):
        tiny_G.synthesis(styles | {name: styles[name][:, None]}, camera, RENDER)
    with pytest.raises(
        ConfigError, match="styles must be torch.float32 like the model's weights, got torch.float64"
    ):
        tiny_G.synthesis({k: v.double() for k, v in styles.items()}, camera, RENDER)
