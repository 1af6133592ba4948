"""Network interpolation: which parameters move, by how much, and what is refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cips3d import Camera, RenderConfig, generator_preset
from cips3d.errors import ConfigError, UserError
from cips3d.inference.blend import DEFAULT_BLEND_LAYERS, blend_generators
from cips3d.models.generator3d import Generator3D

RENDER = RenderConfig(img_size=8, deterministic=True)


@pytest.fixture(scope="module")
def target() -> Generator3D:
    """Another tiny model (a different init stands in for a fine-tuned one)."""
    return Generator3D(generator_preset("tiny"), generator=torch.Generator().manual_seed(1)).eval()


def render(G: Generator3D) -> torch.Tensor:
    z = G.sample_latents(1, torch.Generator().manual_seed(5))
    with torch.no_grad():
        return G(*z, camera=Camera.from_angles(math.pi / 2, math.pi / 2), render=RENDER).img


def blended_names(G: Generator3D, layers) -> set[str]:
    """State-dict names of the INR blocks `layers` and their to-RGB heads."""
    index = [("4", "8", "16", "32", "64", "128", "256", "512", "1024").index(str(x)) for x in layers]
    prefixes = [f"decoder.blocks.{i}." for i in index] + [f"decoder.to_rgb.{i}." for i in index]
    return {n for n, _ in G.named_parameters() if n.startswith(tuple(prefixes))}


def test_gamma_zero_is_the_source_bit_for_bit(tiny_G, target):
    blended = blend_generators(tiny_G, target, 0.0)
    assert torch.equal(render(blended), render(tiny_G))
    source = tiny_G.state_dict()
    assert all(torch.equal(value, source[name]) for name, value in blended.state_dict().items())


def test_gamma_one_takes_exactly_the_blended_layers_of_the_target(tiny_G, target):
    blended = blend_generators(tiny_G, target, 1.0)
    moved = blended_names(tiny_G, DEFAULT_BLEND_LAYERS)
    assert len(moved) == 6 * (2 * 5 + 2)  # 6 blocks x (2 modulated layers x 5 tensors + head weight, bias)
    source, tgt = tiny_G.state_dict(), target.state_dict()
    for name, value in blended.state_dict().items():
        assert torch.equal(value, tgt[name] if name in moved else source[name]), name
    assert not torch.equal(source["decoder.blocks.8.mod1.weight"], tgt["decoder.blocks.8.mod1.weight"])
    assert not torch.equal(render(blended), render(tiny_G))


def test_a_mid_gamma_lies_between_and_leaves_the_inputs_alone(tiny_G, target):
    before = {k: v.clone() for k, v in tiny_G.state_dict().items()}
    blended = blend_generators(tiny_G, target, 0.25, layers=[4, "1024"])
    moved = blended_names(tiny_G, ["4", "1024"])
    src, tgt = tiny_G.state_dict(), target.state_dict()
    for name, value in blended.state_dict().items():
        if name in moved:
            assert torch.allclose(value, 0.75 * src[name] + 0.25 * tgt[name], atol=1e-7)
            lo, hi = torch.minimum(src[name], tgt[name]), torch.maximum(src[name], tgt[name])
            assert ((value >= lo - 1e-7) & (value <= hi + 1e-7)).all()
        else:
            assert torch.equal(value, src[name])
    assert all(torch.equal(before[k], v) for k, v in tiny_G.state_dict().items())
    a, b, mid = render(tiny_G), render(target), render(blended)
    assert not torch.equal(mid, a) and not torch.equal(mid, b)


def test_blending_the_inr_mapping_moves_it_and_its_truncation_mean(tiny_G, target):
    plain = blend_generators(tiny_G, target, 1.0)
    assert torch.equal(plain.inr_mapping.layers[0].linear.weight, tiny_G.inr_mapping.layers[0].linear.weight)
    both = blend_generators(tiny_G, target, 1.0, blend_inr_mapping=True)
    for p, q in zip(both.inr_mapping.parameters(), target.inr_mapping.parameters(), strict=True):
        assert torch.equal(p, q)
    assert torch.allclose(both.truncation_mean_inr, target.truncation_mean_inr, atol=1e-6)
    assert torch.equal(both.truncation_mean_nerf, tiny_G.truncation_mean_nerf)


@pytest.mark.parametrize("gamma", [-0.1, 1.5, float("nan"), "0.5"])
def test_gamma_outside_zero_one_is_refused(tiny_G, target, gamma):
    with pytest.raises(ConfigError, match="gamma"):
        blend_generators(tiny_G, target, gamma)


def test_unknown_layers_and_other_architectures_are_refused(tiny_G, target, small_G):
    with pytest.raises(ConfigError, match="2048"):
        blend_generators(tiny_G, target, 0.5, layers=["1024", "2048"])
    with pytest.raises(UserError, match="architectures"):
        blend_generators(tiny_G, small_G, 0.5)
    with pytest.raises(ConfigError, match="blend_inr_mapping must be True or False, got 'no'"):
        blend_generators(tiny_G, target, 0.5, blend_inr_mapping="no")  # was: true
    one = blend_generators(tiny_G, target, np.float32(0.5), layers="1024,512")  # was: layer '1' unknown
    listed = blend_generators(tiny_G, target, 0.5, layers=["1024", "512"])
    assert all(torch.equal(v, listed.state_dict()[k]) for k, v in one.state_dict().items())
