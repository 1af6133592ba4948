"""Arguments of the wrong kind given to the library's helpers end in one ConfigError naming them, and a
single name or angle is taken where a list is expected (a string was read letter by letter)."""

from __future__ import annotations

import math

import pytest
import torch

from cips3d import Camera, PoseConfig, RenderConfig, generator_preset
from cips3d.errors import ConfigError
from cips3d.inference.blend import blend_generators
from cips3d.inference.multiview import grid_cameras, mix_styles, resolve_inr_layers, styles_for_seeds
from cips3d.inference.sample import sample_seeds
from cips3d.seeding import generators_for_seeds

RENDER = RenderConfig(img_size=8, num_steps=4, deterministic=True)


def test_seeds_as_text_or_a_number_are_named(tiny_G):
    for seeds in ("0-3", 5):
        with pytest.raises(
            ConfigError, match="seeds must be a list of whole numbers, got .*parse_seeds reads text"
        ):
            next(sample_seeds(tiny_G, seeds, render=RENDER, pose=PoseConfig()))  # "0-3": seeds '0', '-', '3'
        with pytest.raises(ConfigError, match="seeds must be a list of whole numbers"):
            generators_for_seeds(seeds)


def test_one_layer_name_and_one_angle_need_no_list(tiny_G):
    assert resolve_inr_layers("inr_w4_0") == ["inr_w4_0"]  # was "unknown INR layer 'i'"
    base, other = styles_for_seeds(tiny_G, [1]), styles_for_seeds(tiny_G, [2])
    mixed = mix_styles(base, other, "4")
    assert torch.equal(mixed["inr_w4_1"], other["inr_w4_1"]) and torch.equal(
        mixed["inr_w8_0"], base["inr_w8_0"]
    )
    cameras = grid_cameras(1.2, [1.5, 1.6])  # a float was "not iterable"
    assert cameras.batch == 2
    with pytest.raises(ConfigError, match="yaws must be a list of angles in radians, got 'front'"):
        grid_cameras("front", [1.5])


def test_models_presets_and_devices_of_the_wrong_kind_are_named(tiny_G):
    with pytest.raises(ConfigError, match="the target must be a Generator3D .*got str"):
        blend_generators(tiny_G, "target.pth", 0.5)  # was an AttributeError on .config
    with pytest.raises(ConfigError, match="a preset is named by a string such as 'ffhq', got \\[\\]"):
        generator_preset([])  # was "unhashable type: 'list'"
    camera = Camera.from_angles(math.pi / 2, math.pi / 2)
    if torch.cuda.is_available():
        assert camera.to("cuda").origin.is_cuda
    else:
        with pytest.raises(ConfigError, match="'cuda' was asked for but PyTorch sees no CUDA GPU here"):
            camera.to("cuda")  # was torch's "Torch not compiled with CUDA enabled" assertion
