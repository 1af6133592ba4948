"""Inversion with a compiled generator (`cips3d invert --compile`): the camera search compiles nothing.

Compilations are counted with a backend that runs the traced graphs eagerly (no inductor), so the test
takes seconds rather than the minutes of real compiles.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch._dynamo.testing import CompileCounter

from cips3d.config import RenderConfig
from cips3d.fast import compile_generator
from cips3d.inference import inversion
from cips3d.inference.inversion import InversionConfig, invert, search_camera


@pytest.fixture
def counted(tiny_G, monkeypatch):
    """A copy of the tiny generator compiled by `compile_generator`, and the counter of its graphs."""
    counter, real_compile = CompileCounter(), torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn: real_compile(fn, backend=counter))
    torch._dynamo.reset()  # no graphs cached by an earlier test, no recompile limit reached
    G = copy.deepcopy(tiny_G)
    compile_generator(G)
    yield G, counter
    torch._dynamo.reset()


def test_the_camera_search_compiles_nothing(counted, monkeypatch):
    """Each search batch (16 cameras, then the rest) was compiled afresh: 34 s against 3.5 s for a
    10-step fit at 16 px on a CPU. A last partial batch is part of the case."""
    G, counter = counted
    monkeypatch.setattr(inversion, "SEARCH_BATCH", 4)  # 3 yaws x 2 pitches + the start: 4 + 3 cameras
    config = InversionConfig(steps=2, size=8, camera_search=3)
    render = RenderConfig(img_size=8, deterministic=True)
    target = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    search_camera(G, target, G.truncation_centre(), render, config)
    assert counter.frame_count == 0
    invert(G, target, config)
    assert counter.frame_count > 0  # the fit itself is still compiled
