"""Looking around a panorama model: each frame is its window of the whole turn, and flat models are
refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from cips3d.config_2d import cips2d_preset
from cips3d.errors import ConfigError
from cips3d.inference.panorama import pan_frames
from cips3d.io.images import to_uint8
from cips3d.models.generator2d import Generator2D


@torch.no_grad()
def test_frame_k_is_the_window_of_the_turn_that_starts_k_columns_round():
    config = dataclasses.replace(cips2d_preset("cips-tiny"), coordinates="cylinder", width=64)
    G = Generator2D(config, torch.Generator().manual_seed(0)).eval()
    w = G.mapping(G.sample_latents(1, torch.Generator().manual_seed(1)))
    whole = to_uint8(G.synthesis(w).clamp(-1, 1))[0].astype(int)  # [32, 64, 3], the training grid
    assert G.frame_width(32) == 64 and G.frame_width(16, turns=0.5) == 16
    frames = list(pan_frames(G, w, frames=64, view_degrees=90))  # one column further round per frame
    assert len(frames) == 64 and frames[0].shape == (32, 16, 3)
    for k in (0, 5, 50, 63):  # 50 and 63 show the seam: their windows go past the last column
        expected = whole[:, (k + np.arange(16)) % 64]
        assert np.abs(frames[k].astype(int) - expected).max() <= 1, k
    half = list(pan_frames(G, w, frames=3, view_degrees=360, height=16))
    assert half[0].shape == (16, 32, 3)


def test_a_flat_model_cannot_be_looked_around():
    G = Generator2D(cips2d_preset("cips-tiny"))
    with pytest.raises(ConfigError, match="cylinder coordinates"):
        next(pan_frames(G, torch.zeros(1, 64), frames=4))


def test_pan_counts_and_heights_are_whole_numbers_of_one_or_more():
    config = dataclasses.replace(cips2d_preset("cips-tiny"), coordinates="cylinder", width=64)
    G = Generator2D(config)
    w = torch.zeros(1, config.style_dim)
    for settings, name in (({"height": 0}, "height"), ({"frames": 2.5}, "frames"), ({"frames": 0}, "frames")):
        with pytest.raises(
            ConfigError, match=f"{name} must be a whole number of 1 or more"
        ):  # height 0 was the default
            next(pan_frames(G, w, **{"frames": 4, **settings}))
    with pytest.raises(ConfigError, match="view_degrees must be a finite number"):
        next(pan_frames(G, w, frames=4, view_degrees="90"))
