"""Video frames: one synthesis call per frame, bit-exact repeats, panels, text, latent walks."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from cips3d.config import PoseConfig, RenderConfig
from cips3d.errors import ConfigError
from cips3d.inference.geometry import normals_from_depth, normals_to_rgb
from cips3d.inference.sample import sample_seeds
from cips3d.inference.trajectories import circle_near_far, orbit, still, translate_rotate
from cips3d.inference.video import (
    LatentWalk,
    compose_frame,
    frame_size,
    lerp,
    render_trajectory,
    seed_styles,
    slerp,
    video_frames,
    walk_steps,
)
from cips3d.io.images import colorize_depth, to_uint8
from cips3d.rendering.cameras import Camera

SIZE = 12
DET = RenderConfig(img_size=SIZE, deterministic=True)


def test_a_frame_is_exactly_one_synthesis_render_at_its_camera_and_fov(tiny_G):
    styles, _ = seed_styles(tiny_G, 3, psi=0.8)
    traj = circle_near_far(num_frames=2)  # the fov changes from frame to frame
    chunked = replace(DET, chunk_rows=50)  # several chunks per frame
    outputs = list(render_trajectory(tiny_G, styles, traj, chunked))
    frames = list(video_frames(tiny_G, styles, traj, chunked, panels=("image", "aux", "depth")))
    assert len(outputs) == len(frames) == 4 and traj.fov == (12.0, 20.0, 20.0, 12.0)
    for i in (0, 1):
        camera, fov = traj.frame(i)
        single = tiny_G.synthesis(styles, camera, replace(chunked, fov=fov))
        for name in ("img", "aux_img", "depth"):
            assert torch.equal(getattr(outputs[i], name), getattr(single, name))
        assert np.array_equal(frames[i][:, :SIZE], to_uint8(single.img[0]))
        assert np.array_equal(frames[i][:, SIZE : 2 * SIZE], to_uint8(single.aux_img[0]))
        assert np.array_equal(frames[i][:, 2 * SIZE :], colorize_depth(single.depth[0], 0.88, 1.12))
    assert not np.array_equal(frames[0], frames[1])  # the camera moved and zoomed


def test_a_still_frame_equals_cips3d_sample_of_the_same_seed(tiny_G):
    frame = next(video_frames(tiny_G, seed_styles(tiny_G, 5)[0], still(num_frames=1), DET))
    (batch,) = sample_seeds(tiny_G, [5], render=DET, pose=PoseConfig.fixed())
    assert np.array_equal(frame, to_uint8(batch.output.img[0]))
    camera = Camera.from_angles(math.pi / 2, math.pi / 2)
    assert np.array_equal(frame, to_uint8(tiny_G.synthesis(seed_styles(tiny_G, 5)[0], camera, DET).img[0]))


def test_deterministic_videos_repeat_bit_for_bit(tiny_G):
    styles, _ = seed_styles(tiny_G, 1)
    traj = translate_rotate(num_frames=3, num_samples_translate=4)  # rolls: an up vector per frame
    a = list(video_frames(tiny_G, styles, traj, DET, panels=("image", "depth"), text=True))
    b = list(video_frames(tiny_G, styles, traj, DET, panels=("image", "depth"), text=True))
    assert len(a) == traj.num_frames == 8 + 3 and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert a[0].shape == (SIZE, 2 * SIZE, 3) and frame_size(DET, ("image", "depth")) == (2 * SIZE, SIZE)


def test_the_stochastic_sampler_is_reproducible_from_the_seed(tiny_G):
    stochastic = replace(DET, deterministic=False)
    traj = orbit(num_frames=2)

    def frames(seed):
        styles, generator = seed_styles(tiny_G, seed)
        return list(video_frames(tiny_G, styles, traj, stochastic, generator=generator))

    first, again, other_seed = frames(2), frames(2), frames(3)
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    deterministic = list(video_frames(tiny_G, seed_styles(tiny_G, 2)[0], traj, DET))
    assert not np.array_equal(first[0], deterministic[0]) and not np.array_equal(first[0], other_seed[0])


def test_frames_are_rendered_only_when_asked_for(tiny_G, monkeypatch):
    calls = []
    synthesis = tiny_G.synthesis
    monkeypatch.setattr(tiny_G, "synthesis", lambda *a, **k: calls.append(1) or synthesis(*a, **k))
    frames = video_frames(tiny_G, seed_styles(tiny_G, 0)[0], orbit(num_frames=500), DET)
    assert calls == []
    taken = list(itertools.islice(frames, 2))
    assert len(taken) == 2 and len(calls) == 2  # an mp4 writer holds one frame at a time


def test_one_seed_video_folds_its_styles_once_and_a_walk_once_per_frame(tiny_G, monkeypatch):
    calls = []
    modulate = tiny_G.modulate
    monkeypatch.setattr(tiny_G, "modulate", lambda *a, **k: calls.append(1) or modulate(*a, **k))
    assert len(list(render_trajectory(tiny_G, seed_styles(tiny_G, 0)[0], orbit(num_frames=3), DET))) == 3
    assert len(calls) == 1
    calls.clear()
    walk = LatentWalk(tiny_G, [0, 1], steps_between=2)
    assert len(list(render_trajectory(tiny_G, walk, still(num_frames=len(walk)), DET))) == len(walk) == 3
    assert len(calls) == 3  # each frame has its own styles


def test_text_and_progress_bar(tiny_G, capsys):
    big = replace(DET, img_size=48)
    styles = seed_styles(tiny_G, 0)[0]
    plain = next(video_frames(tiny_G, styles, still(num_frames=1), big))
    (labelled,) = video_frames(tiny_G, styles, still(num_frames=1), big, text=True, progress=True)
    changed = np.any(plain != labelled, axis=-1)
    assert changed[:32, :32].any() and not changed[32:].any() and not changed[:, 32:].any()  # top left
    assert "1/1" in capsys.readouterr().err


def test_compose_frame_refuses_unknown_and_repeated_panels(tiny_G):
    out = next(render_trajectory(tiny_G, seed_styles(tiny_G, 0)[0], still(num_frames=1), DET))
    assert compose_frame(out, DET, ("depth", "image")).shape == (SIZE, 2 * SIZE, 3)
    with pytest.raises(ConfigError, match="panels"):
        compose_frame(out, DET, ("image", "mask"))
    with pytest.raises(ConfigError, match="name each panel once"):  # rendered twice, side by side
        compose_frame(out, DET, ("depth", "depth"))


def test_the_normals_panel_is_what_sample_writes_for_the_frame_at_its_fov(tiny_G):
    out = next(render_trajectory(tiny_G, seed_styles(tiny_G, 0)[0], still(num_frames=1), DET))
    frame = compose_frame(out, DET, ("image", "normals"))
    normals = normals_to_rgb(normals_from_depth(out.depth, DET.fov))[0]  # as `cips3d sample --normals`
    assert np.array_equal(frame[:, SIZE:], normals) and normals.std() > 0
    # a zooming trajectory: each frame's normals come from its own rays (they used the render's fov 12)
    styles = seed_styles(tiny_G, 0)[0]
    traj = circle_near_far(num_frames=2)
    outputs = list(render_trajectory(tiny_G, styles, traj, DET))
    frames = list(video_frames(tiny_G, styles, traj, DET, panels=("normals",)))
    for i in (0, 1):
        expected = normals_to_rgb(normals_from_depth(outputs[i].depth, traj.fov[i]))[0]
        assert np.array_equal(frames[i], expected), traj.fov[i]


def test_slerp_and_lerp_closed_forms():
    a, b = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 2.0, 0.0]])
    assert torch.allclose(slerp(a, b, 0.5), torch.tensor([[1.0, 2.0, 0.0]]) / math.sqrt(2), atol=1e-6)
    assert torch.allclose(slerp(a, a * 3, 0.5), a * 2)  # parallel: falls back to lerp
    assert torch.allclose(lerp(a, b, 0.25), torch.tensor([[0.75, 0.5, 0.0]]))
    x, y = torch.randn(2, 64, generator=torch.Generator().manual_seed(0))
    for f in (slerp, lerp):
        assert torch.equal(f(x, y, 0.0), x) and torch.equal(f(x, y, 1.0), y)
    # slerp between equal-length vectors keeps the length; lerp shortens it
    y = y / y.norm() * x.norm()
    assert slerp(x, y, 0.5).norm() == pytest.approx(x.norm().item(), rel=1e-5)
    assert lerp(x, y, 0.5).norm() < 0.9 * x.norm()


def test_walk_steps():
    assert walk_steps(3, 2) == [(0, 0.0), (0, 0.5), (1, 0.0), (1, 0.5), (2, 0.0)]  # as the list it was
    assert walk_steps(3, 2)[1:3] == [(0, 0.5), (1, 0.0)]


@pytest.mark.parametrize("space, method", [("z", "slerp"), ("z", "lerp"), ("w", "slerp"), ("w", "lerp")])
def test_walk_endpoints_are_the_seeds_own_styles(tiny_G, space, method):
    walk = LatentWalk(tiny_G, [4, 7, 9], steps_between=3, space=space, method=method, psi=0.7)
    assert len(walk) == 7
    for index, seed in ((0, 4), (3, 7), (6, 9)):
        own = seed_styles(tiny_G, seed, psi=0.7)[0]
        assert all(torch.equal(walk[index][k], own[k]) for k in own)
    middle, ends = walk[1]["inr_w1024_1"], (walk[0]["inr_w1024_1"], walk[3]["inr_w1024_1"])
    assert not any(torch.allclose(middle, e) for e in ends)


def test_walk_video_endpoints_equal_the_seed_renders(tiny_G):
    walk = LatentWalk(tiny_G, [1, 2], steps_between=2)
    traj = orbit(num_frames=2).looped(len(walk))  # frames 0 and 2 share the front camera
    frames = list(video_frames(tiny_G, walk, traj, DET))
    front = still(num_frames=1)
    for index, seed in ((0, 1), (2, 2)):
        own = next(video_frames(tiny_G, seed_styles(tiny_G, seed)[0], front, DET))
        assert np.array_equal(frames[index], own)
    with pytest.raises(ValueError, match="3 frames"):
        next(video_frames(tiny_G, walk, orbit(num_frames=2), DET))


def test_walk_refusals(tiny_G):
    with pytest.raises(ConfigError, match="two seeds"):
        LatentWalk(tiny_G, [1], steps_between=2)
    with pytest.raises(ConfigError, match="latent space"):
        LatentWalk(tiny_G, [1, 2], steps_between=2, space="x")
    with pytest.raises(ConfigError, match="steps"):
        LatentWalk(tiny_G, [1, 2], steps_between=0)


def test_render_trajectory_names_what_it_cannot_render(tiny_G):
    styles = seed_styles(tiny_G, 1)[0]
    with pytest.raises(ConfigError, match="render must be a RenderConfig, got dict"):
        next(render_trajectory(tiny_G, styles, still(2), {}))
    with pytest.raises(ConfigError, match="trajectory must be a Trajectory .*got str"):
        next(render_trajectory(tiny_G, styles, "orbit", DET))
    with pytest.raises(ConfigError, match="got styles for 1 frames but the trajectory has 2"):
        next(render_trajectory(tiny_G, [styles], still(2), DET))
    with pytest.raises(ConfigError, match="styles must be a dict of tensors by layer or a sequence of them"):
        next(render_trajectory(tiny_G, torch.ones(3), still(2), DET))


def test_video_frames_names_a_trajectory_name_and_takes_one_panel_as_a_string(tiny_G):
    styles = seed_styles(tiny_G, 1)[0]
    with pytest.raises(ConfigError, match="trajectory must be a Trajectory .*got str"):
        next(video_frames(tiny_G, styles, "yaw", DET))  # was an AttributeError on 'angles'
    frame = next(video_frames(tiny_G, styles, still(1), DET, panels="image"))  # was ['i', 'm', 'a', ...]
    assert frame.shape == (SIZE, SIZE, 3)
