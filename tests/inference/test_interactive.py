"""Interactive rendering: frames of fixed styles equal the generator's images, styles fold once."""

from __future__ import annotations

import dataclasses
import math
import warnings

import pytest
import torch

from cips3d import Camera, RenderConfig
from cips3d.errors import ConfigError
from cips3d.inference import interactive
from cips3d.inference.interactive import InteractiveRenderer
from cips3d.nn import FiLMSine, ModulatedLinear

RENDER = RenderConfig(img_size=12, deterministic=True, chunk_rows=50)


def _styles(G, batch=2, seed=0):
    return G.mapping(*G.sample_latents(batch, torch.Generator().manual_seed(seed)))


def _cameras() -> list[Camera]:
    return [
        Camera.from_angles(torch.tensor([1.3, 1.9]), torch.tensor([1.5, 1.6])),
        Camera.look_at_origin(torch.tensor([[0.2, 0.1, 1.0], [-0.3, 0.0, 0.95]])),  # no angles
        Camera(
            torch.tensor([[0.0, 0.0, 1.0]] * 2),
            torch.tensor([[0.0, 0.05, -1.0]] * 2),
            up=torch.tensor([0.1, 1.0, 0.0]),
        ),  # fmt: skip
    ]


def test_frames_equal_the_generator_images_for_every_kind_of_camera(tiny_G):
    styles = _styles(tiny_G)
    viewer = InteractiveRenderer(tiny_G, styles, RENDER)
    for camera in _cameras():
        frame = viewer.render(camera)
        with torch.no_grad():
            expected = tiny_G.synthesis(styles, camera, RENDER)
        assert torch.equal(frame.img, expected.img) and torch.equal(frame.depth, expected.depth)
        assert torch.equal(frame.pitch_yaw, expected.pitch_yaw)
    assert not viewer.uses_graph  # a CPU renders eagerly


def test_auto_chunking_is_resolved_once_when_the_viewer_is_made(tiny_G):
    """'auto' depends on the device's free memory, which rendering changes: a viewer fixes it up front."""
    viewer = InteractiveRenderer(tiny_G, _styles(tiny_G), dataclasses.replace(RENDER, chunk_rows="auto"))
    assert viewer.render_config.chunk_rows == 4096  # the CPU's value
    fixed = InteractiveRenderer(tiny_G, _styles(tiny_G), dataclasses.replace(RENDER, chunk_rows=16))
    assert fixed.render_config.chunk_rows == 16


def test_styles_are_folded_once_for_all_frames(tiny_G, monkeypatch):
    calls = []
    for cls, name in ((ModulatedLinear, "modulated_weight"), (FiLMSine, "fold")):
        original = getattr(cls, name)
        monkeypatch.setattr(cls, name, lambda self, style, _f=original: calls.append(1) or _f(self, style))
    viewer = InteractiveRenderer(tiny_G, _styles(tiny_G), RENDER)
    folded = len(calls)
    assert folded == 2 * len(tiny_G.decoder.blocks) + len(tiny_G.field.hidden) + 1
    for camera in _cameras():
        viewer.render(camera)
    assert len(calls) == folded


def test_a_failed_graph_capture_warns_once_and_renders_eagerly(tiny_G):
    styles = _styles(tiny_G)
    viewer = InteractiveRenderer(tiny_G, styles, RENDER)
    viewer.wants_graph = True  # on a CPU, capturing fails (no CUDA stream): the fallback must hold
    camera = _cameras()[0]
    with pytest.warns(UserWarning, match="CUDA graph capture failed"):
        first = viewer.render(camera)
    second = viewer.render(camera)  # no second attempt, no second warning
    with torch.no_grad():
        expected = tiny_G.synthesis(styles, camera, RENDER).img
    assert not viewer.uses_graph and torch.equal(first.img, expected) and torch.equal(second.img, expected)


def test_random_sampling_and_batch_mismatches_are_refused(tiny_G):
    with pytest.raises(ConfigError, match="deterministic"):
        InteractiveRenderer(tiny_G, _styles(tiny_G), RenderConfig(img_size=8))
    incomplete = {k: v for k, v in _styles(tiny_G).items() if k != "nerf_rgb"}
    with pytest.raises(ValueError, match="are missing from styles"):
        InteractiveRenderer(tiny_G, incomplete, RENDER)
    viewer = InteractiveRenderer(tiny_G, _styles(tiny_G), RENDER)
    with pytest.raises(ValueError, match="1 camera for styles of batch 2"):
        viewer.render(Camera.from_angles(math.pi / 2, math.pi / 2))


class _FakeGraph:
    """Stands in for a CUDA graph on a CPU: a replay re-runs the recorded frame into the same output
    buffers (or, when `stale`, does nothing: a graph that missed the camera's buffers)."""

    def __init__(self, frame, out, stale: bool) -> None:
        self.frame, self.out, self.stale = frame, out, stale

    def replay(self) -> None:
        if not self.stale:
            fresh = self.frame()
            for name in ("img", "aux_img", "depth", "opacity", "nerf_feature", "cam2world", "pitch_yaw"):
                getattr(self.out, name).copy_(getattr(fresh, name))


def _fake_recorder(stale: bool):
    def record(frame, device):
        out = frame()
        return _FakeGraph(frame, out, stale), out

    return record


def test_replayed_frames_are_checked_against_eager_ones_then_trusted(tiny_G, monkeypatch):
    monkeypatch.setattr(interactive, "record_cuda_graph", _fake_recorder(stale=False))
    styles = _styles(tiny_G)
    viewer = InteractiveRenderer(tiny_G, styles, RENDER)
    viewer.wants_graph = True  # as on a CUDA device
    for camera in _cameras():
        with torch.no_grad():
            expected = tiny_G.synthesis(styles, camera, RENDER)
        assert torch.equal(viewer.render(camera).img, expected.img)
    assert viewer.uses_graph and viewer._checks_left == 0


def test_a_graph_that_ignores_the_camera_is_caught_and_dropped(tiny_G, monkeypatch):
    monkeypatch.setattr(interactive, "record_cuda_graph", _fake_recorder(stale=True))
    styles = _styles(tiny_G)
    viewer = InteractiveRenderer(tiny_G, styles, RENDER)
    viewer.wants_graph = True
    first, second, third = _cameras()
    viewer.render(first)  # the captured camera: the stale graph happens to be right
    assert viewer.uses_graph
    with pytest.warns(UserWarning, match="differed from the eager frame"):
        frame = viewer.render(second)
    with torch.no_grad():
        assert torch.equal(frame.img, tiny_G.synthesis(styles, second, RENDER).img)  # the eager frame
        assert torch.equal(viewer.render(third).img, tiny_G.synthesis(styles, third, RENDER).img)
    assert not viewer.uses_graph


def test_styles_and_cameras_of_the_wrong_kind_are_named(tiny_G):
    with pytest.raises(ConfigError, match="styles must be a dict of .* got list"):  # was an AttributeError
        InteractiveRenderer(tiny_G, [1], RENDER)
    viewer = InteractiveRenderer(tiny_G, _styles(tiny_G), RENDER)
    with pytest.raises(ConfigError, match="render takes a Camera, got str"):
        viewer.render("front")


@pytest.mark.parametrize("fast_bf16", [False, True])
def test_bf16_where_it_is_slow_is_said_by_the_library_too(tiny_G, monkeypatch, fast_bf16):
    """The commands said it; a Python user rendered 512 px frames for two minutes each without a word."""
    from cips3d import fast  # noqa: PLC0415

    monkeypatch.setattr(fast, "bf16_fast", lambda device: fast_bf16)
    render = dataclasses.replace(RENDER, precision="bf16")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        InteractiveRenderer(tiny_G, _styles(tiny_G), render)
    slow = [w for w in seen if issubclass(w.category, fast.SlowPrecisionWarning)]
    assert len(slow) == (0 if fast_bf16 else 1)
