"""torch.compile of the field and decoder (the real compile is slow: tens of seconds; `make test-slow`)."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch

from cips3d import Camera, RenderConfig
from cips3d.errors import ConfigError
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


def test_a_failing_compiler_falls_back_to_eager_with_one_warning(tiny_G, monkeypatch):
    def broken_compile(fn):
        def fail(*args, **kwargs):
            raise RuntimeError("InductorError: main.so: file too short")

        return fail

    monkeypatch.setattr(torch, "compile", broken_compile)
    fallback = copy.deepcopy(tiny_G)
    compile_generator(fallback)
    z = tiny_G.sample_latents(2, torch.Generator().manual_seed(1))
    camera = Camera.from_angles(math.pi / 2, math.pi / 2, batch=2)
    render = RenderConfig(img_size=8, deterministic=True)
    with torch.no_grad():
        eager = tiny_G.synthesis(tiny_G.mapping(*z), camera, render).img
        with pytest.warns(UserWarning, match="file too short") as caught:
            first = fallback.synthesis(fallback.mapping(*z), camera, render).img
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no further warnings: the modules now run eagerly
            second = fallback.synthesis(fallback.mapping(*z), camera, render).img
    assert len(caught) == 2  # one per module (field and decoder)
    assert torch.equal(first, eager) and torch.equal(second, eager)


@pytest.mark.parametrize("error", [torch.OutOfMemoryError("CUDA out of memory"), ConfigError("bad input")])
def test_out_of_memory_and_input_errors_are_not_taken_for_compiler_failures(tiny_G, monkeypatch, error):
    """They went into the eager fallback, turning compilation off for good with a 'torch.compile
    failed' warning; they are raised as they are."""

    def compiled_that_raises(fn):
        def run(*args, **kwargs):
            raise error

        return run

    monkeypatch.setattr(torch, "compile", compiled_that_raises)
    G = copy.deepcopy(tiny_G)
    compile_generator(G)
    z = tiny_G.sample_latents(1, torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 'torch.compile failed' warning
        for _ in range(2):  # and the compiled path is kept (an eager fallback would render the second)
            with pytest.raises(type(error)), torch.no_grad():
                G.synthesis(G.mapping(*z), Camera.from_angles(1.5, 1.5), RenderConfig(img_size=8))
