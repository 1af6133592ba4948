"""torch.compile of the field and decoder (slow: compiling takes tens of seconds; `make test-slow`)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from cips3d import Camera, RenderConfig
from cips3d.fast import compile_generator


@pytest.mark.slow
def test_a_compiled_generator_renders_what_the_eager_one_does(tiny_G):
    compiled = copy.deepcopy(tiny_G)
    compile_generator(compiled)
    z = tiny_G.sample_latents(2, torch.Generator().manual_seed(0))
    camera = Camera.from_angles(math.pi / 2, math.pi / 2, batch=2)
    render = RenderConfig(img_size=16, deterministic=True, chunk_rows=128)
    with torch.no_grad():
        eager = tiny_G.synthesis(tiny_G.mapping(*z), camera, render).img
        fast = compiled.synthesis(compiled.mapping(*z), camera, render).img
    assert (eager - fast).abs().max() < 1e-4
