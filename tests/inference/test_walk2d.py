"""A walk through a 2D model's latents: the keys are the seeds' own styles, the frames between them
follow the slerp of z, and truncation applies to every frame."""

from __future__ import annotations

import re

import pytest
import torch

from cips3d.config_2d import cips2d_preset
from cips3d.errors import ConfigError
from cips3d.inference.video import slerp
from cips3d.inference.walk2d import walk_styles_2d
from cips3d.models.generator2d import Generator2D


@pytest.fixture(scope="module")
def G() -> Generator2D:
    return Generator2D(cips2d_preset("cips-tiny"), torch.Generator().manual_seed(0)).eval()


def style(G: Generator2D, seed: int) -> torch.Tensor:
    with torch.no_grad():
        return G.mapping(G.sample_latents(1, torch.Generator().manual_seed(seed)))


def test_the_walk_passes_through_every_seed_and_slerps_between(G):
    frames = list(walk_styles_2d(G, [3, 7, 1], steps_between=4))
    assert len(frames) == 2 * 4 + 1
    for index, seed in ((0, 3), (4, 7), (8, 1)):
        assert torch.equal(frames[index], style(G, seed))
    z3, z7 = (G.sample_latents(1, torch.Generator().manual_seed(s)) for s in (3, 7))
    with torch.no_grad():
        torch.testing.assert_close(frames[1], G.mapping(slerp(z3, z7, 0.25)))
    assert not torch.allclose(frames[1], frames[0]) and not torch.allclose(frames[1], frames[4])


def test_truncation_applies_to_every_frame_and_bad_walks_are_refused(G):
    mean = G.mean_style()
    frames = list(walk_styles_2d(G, [3, 7], steps_between=2, psi=0.0))
    assert all(torch.allclose(frame, mean) for frame in frames)
    for seeds, steps, psi, words in (([3], 2, 1.0, "a walk needs two seeds or more, got [3]"),
                                     ([3, 4], 2, 1.5, "psi must be a number between 0 and 1")):  # fmt: skip
        with pytest.raises(ConfigError, match=re.escape(words)):  # the one rule broken, not all three
            list(walk_styles_2d(G, seeds, steps, psi))
    for steps in (0, 2.5):  # 2.5 was a TypeError from range()
        with pytest.raises(ConfigError, match="steps_between must be a whole number of 1 or more"):
            list(walk_styles_2d(G, [3, 4], steps))
