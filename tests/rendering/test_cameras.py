"""Cameras against closed forms: positions, look-at frames, and every pose distribution."""

from __future__ import annotations

import math

import pytest
import torch

from cips3d import Camera, PoseConfig
from cips3d.config import POSE_MODES
from cips3d.errors import ConfigError
from cips3d.rendering.cameras import (
    look_at,
    position_from_angles,
    sample_pose_angles,
    truncated_standard_normal,
)

N = 20_000


def test_frontal_camera_sits_at_plus_z_looking_at_the_origin():
    cam = Camera.from_angles(math.pi / 2, math.pi / 2)
    assert torch.allclose(cam.origin, torch.tensor([[0.0, 0.0, 1.0]]), atol=1e-7)
    m = cam.cam2world()[0]
    assert torch.allclose(m[:3, 2], torch.tensor([0.0, 0.0, 1.0]), atol=1e-7)  # camera looks down its -z
    assert torch.allclose(m[:3, 0], torch.tensor([1.0, 0.0, 0.0]), atol=1e-7)  # world +x is image right
    assert torch.allclose(m[:3, 1], torch.tensor([0.0, 1.0, 0.0]), atol=1e-7)


def test_increasing_yaw_moves_the_camera_towards_minus_x():
    origin = position_from_angles(torch.tensor([math.pi / 2 + 0.3]), torch.tensor([math.pi / 2]))
    assert origin[0, 0] < 0 and origin[0, 1].abs() < 1e-7


def test_look_at_gives_rotations_pointing_at_the_target():
    g = torch.Generator().manual_seed(0)
    origin = torch.randn(64, 3, generator=g)
    forward = -origin
    m = look_at(origin, forward)
    rot = m[:, :3, :3]
    assert torch.allclose(rot.transpose(1, 2) @ rot, torch.eye(3).expand(64, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(64), atol=1e-5)
    assert torch.allclose(-rot[:, :, 2], forward / forward.norm(dim=-1, keepdim=True), atol=1e-6)
    assert torch.equal(m[:, :3, 3], origin)


def test_explicit_origin_is_used_as_given():
    origin = torch.tensor([[0.1, 0.06, 0.97]])
    lookup = torch.tensor([[-0.07, -0.08, -0.97]])
    m = Camera(origin=origin, forward=lookup).cam2world()
    assert torch.equal(m[0, :3, 3], origin[0])
    assert torch.allclose(-m[0, :3, 2], lookup[0] / lookup.norm(), atol=1e-6)


def draws(mode: str, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    pose = PoseConfig(mode=mode, yaw_mean=1.5, pitch_mean=1.4, yaw_stddev=0.3, pitch_stddev=0.2, **kw)
    return sample_pose_angles(pose, N, torch.Generator().manual_seed(0))


def test_gaussian_and_normal_modes_have_the_given_moments():
    for mode in ("gaussian", "normal"):
        yaw, pitch = draws(mode)
        assert abs(yaw.mean() - 1.5) < 0.01 and abs(yaw.std() - 0.3) < 0.01
        assert abs(pitch.mean() - 1.4) < 0.01 and abs(pitch.std() - 0.2) < 0.01


def test_uniform_mode_fills_the_box():
    yaw, pitch = draws("uniform")
    assert yaw.min() >= 1.2 and yaw.max() <= 1.8 and abs(yaw.std() - 0.6 / math.sqrt(12)) < 0.01
    assert pitch.min() >= 1.2 and pitch.max() <= 1.6


def test_truncated_gaussian_stays_within_two_stddevs():
    yaw, pitch = draws("truncated_gaussian")
    # Only when all 4 candidates fall outside (p = 4e-6 per draw) may a value leave the band.
    assert ((yaw - 1.5).abs() >= 0.6).sum() <= 2 and ((pitch - 1.4).abs() >= 0.4).sum() <= 2
    assert abs(yaw.std() - 0.3 * 0.8796) < 0.01  # std of N(0,1) truncated to (-2, 2)
    candidates = torch.tensor([[3.0, -2.5, 0.5, 1.0], [5.0, 5.0, 5.0, 5.0]])
    assert torch.equal(truncated_standard_normal(candidates), torch.tensor([0.5, 5.0]))


def test_spherical_uniform_is_uniform_in_cos_pitch():
    yaw, pitch = draws("spherical_uniform")
    v = (1 - torch.cos(pitch)) / 2  # uniform on (1.4 +- 0.2) / pi
    assert v.min() >= (1.2 / math.pi) - 1e-6 and v.max() <= (1.6 / math.pi) + 1e-6
    assert abs(v.std() - 0.4 / math.pi / math.sqrt(12)) < 0.002


def test_hybrid_draws_either_a_wide_box_or_the_gaussian():
    pose = PoseConfig(mode="hybrid", yaw_mean=1.5, pitch_mean=1.4, yaw_stddev=0.3, pitch_stddev=0.2)
    kinds = set()
    for seed in range(12):
        yaw, _ = sample_pose_angles(pose, 4000, torch.Generator().manual_seed(seed))
        kinds.add("box" if (yaw - 1.5).abs().max() <= 0.6 else "gaussian")
    assert kinds == {"box", "gaussian"}


def test_mean_mode_is_constant_and_pitch_is_clamped():
    yaw, pitch = draws("mean")
    assert torch.all(yaw == 1.5) and torch.all(pitch == torch.tensor(1.4))
    pose = PoseConfig(mode="gaussian", pitch_mean=0.0, pitch_stddev=1.0)
    _, pitch = sample_pose_angles(pose, 1000, torch.Generator().manual_seed(1))
    assert pitch.min() >= 1e-5 and pitch.max() <= math.pi - 1e-5
    assert (pitch == torch.tensor(1e-5)).any()


@pytest.mark.parametrize("mode", POSE_MODES)
def test_every_mode_is_reproducible_from_its_generator(mode):
    pose = PoseConfig(mode=mode)
    a = sample_pose_angles(pose, 8, torch.Generator().manual_seed(3))
    b = sample_pose_angles(pose, 8, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_injected_draws_replace_the_random_ones():
    pose = PoseConfig(mode="gaussian", yaw_stddev=0.3, pitch_stddev=0.155)
    r = torch.tensor([[0.5], [-1.0]])
    yaw, pitch = sample_pose_angles(pose, 2, yaw_draw=r, pitch_draw=-r)
    assert torch.allclose(yaw, math.pi / 2 + 0.3 * r[:, 0])
    assert torch.allclose(pitch, math.pi / 2 - 0.155 * r[:, 0])


def test_from_angles_builds_the_batch_asked_for_or_says_why_not():
    assert Camera.from_angles(1.5, 1.5, batch=3).batch == 3
    assert Camera.from_angles(torch.tensor([1.0, 2.0]), 1.5).batch == 2
    for yaw, batch in ((1.5, 0), (1.5, -3), (torch.tensor([1.0, 2.0]), 3)):
        with pytest.raises(ValueError, match="cameras need a batch of 1 or more with one angle or one per"):
            Camera.from_angles(yaw, 1.5, batch=batch)


def test_a_camera_looking_straight_down_or_up_continues_the_nearby_frames():
    """With up = +y a camera looking along y has no left; it gets the frame of the views beside it (seen
    from +z), where it gave NaN columns and a NaN image before."""
    for y in (1.0, -1.0):
        m = Camera(origin=torch.tensor([[0.0, y, 0.0]]), forward=torch.tensor([[0.0, -y, 0.0]])).cam2world()
        pitch = 1e-3 if y > 0 else math.pi - 1e-3
        near = Camera.from_angles(math.pi / 2, pitch).cam2world()
        assert torch.isfinite(m).all() and torch.allclose(m[:, :3, :3], near[:, :3, :3], atol=2e-3)
    sideways = look_at(torch.zeros(2, 3), torch.tensor([[1.0, 0, 0], [0, 0, 1.0]]), torch.tensor([1.0, 0, 0]))
    assert torch.isfinite(sideways).all()  # an up hint along a horizontal view falls back to +y
    assert torch.allclose(sideways[0, :3, 1], torch.tensor([0.0, 1.0, 0.0]))  # the view along x
    assert torch.allclose(sideways[1, :3, 1], torch.tensor([1.0, 0.0, 0.0]))  # a roll is kept


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: Camera.from_angles(float("nan"), 1.5), "camera angles must be finite radians of at most"),
        (lambda: Camera.from_angles(1.5, 1e39), "camera angles must be finite radians of at most"),
        (lambda: Camera.from_angles(torch.ones(2, 2), 1.5), "camera angles must be numbers or [B] tensors"),
        (
            lambda: Camera(torch.zeros(1, 3), torch.zeros(1, 3)),
            "forward (viewing direction) must not be zero",
        ),
        (
            lambda: Camera(torch.zeros(1, 3), torch.full((1, 3), math.inf)),
            "origin and forward must be finite",
        ),
        (lambda: Camera.look_at_origin(torch.zeros(1, 3)), "cannot sit at it"),
        (
            lambda: Camera(torch.ones(2, 3), -torch.ones(2, 3), up=torch.ones(5, 3)),
            "up must be [3] or [2, 3]",
        ),
        (lambda: Camera(torch.ones(3, 3), -torch.ones(3, 3), yaw=torch.zeros(5)), "yaw must be [3] like"),
        (
            lambda: Camera(origin="front", forward=torch.ones(1, 3)),
            "camera origin must be a tensor or numbers",
        ),
        (lambda: Camera.cat([]), "at least one camera"),
        (
            lambda: Camera.from_angles(1.5, 1.5, radius=-1.0),
            "radius must be a positive number of at most 1e+06",
        ),
        (lambda: Camera.from_angles(1.5, 1.5, radius=math.nan), "radius must be a positive number"),
        (lambda: Camera.from_angles(1.5, 1.5, radius="1"), "got '1'"),
    ],
    ids=[
        "nan",
        "huge",
        "2d-angles",
        "zero-forward",
        "inf",
        "at-origin",
        "up-batch",
        "yaw-batch",
        "text",
        "cat",
        "negative-radius",  # was: a camera behind the origin, looking away from it
        "nan-radius",
        "text-radius",
    ],
)
def test_impossible_cameras_are_refused_in_one_sentence(make, words):
    with pytest.raises(ConfigError) as caught:
        make()
    assert words in str(caught.value)


def test_cameras_take_lists_and_concatenate_keeping_each_ones_up_and_angles():
    given = Camera(origin=[[0.0, 0.0, 1.0]], forward=[[0.0, 0.0, -1.0]], up=[1.0, 0.0, 0.0])
    assert given.origin.dtype == torch.float32 and given.up.shape == (3,)
    joined = Camera.cat([given, Camera.from_angles(1.4, 1.5)])
    assert torch.equal(joined.cam2world()[0], given.cam2world()[0])  # its roll is kept
    assert torch.equal(joined.cam2world()[1], Camera.from_angles(1.4, 1.5).cam2world()[0])
    assert torch.allclose(joined.pitch_yaw(), torch.tensor([[0.0, 0.0], [1.5, 1.4]]))
    assert torch.equal(joined.select(1).origin, joined.origin[1:])  # an int picks one camera


def test_camera_values_a_review_found_unchecked_are_refused_or_converted():
    """A NaN up vector rendered an image of NaN; a pitch past a pole rendered the pole (angles in
    degrees passed); integer tensors failed deep in torch's norm."""
    with pytest.raises(ConfigError, match="camera up must be finite"):
        Camera(origin=torch.tensor([[0, 0, 1.0]]), forward=torch.tensor([[0, 0, -1.0]]),
               up=torch.tensor([math.nan, 1.0, 0]))  # fmt: skip
    for pitch in (4.0, -0.5, 90.0):
        with pytest.raises(ConfigError, match=f"camera pitch must run from 0 .* got {pitch:g}"):
            Camera.from_angles(1.5, pitch)
    at_poles = Camera.from_angles(torch.tensor([1.5, 1.5]), torch.tensor([0.0, math.pi]))  # float32 pi
    assert at_poles.pitch.tolist() == pytest.approx([1e-5, math.pi - 1e-5], abs=1e-6)
    ints = Camera(origin=torch.tensor([[0, 0, 1]]), forward=torch.tensor([[0, 0, -1]]))
    floats = Camera(origin=torch.tensor([[0, 0, 1.0]]), forward=torch.tensor([[0, 0, -1.0]]))
    assert ints.origin.dtype == torch.float32 and torch.equal(ints.cam2world(), floats.cam2world())


def test_an_official_pose_setting_that_is_no_number_is_named():
    with pytest.raises(ConfigError, match="the official setting h_stddev must be a number, got 'x'"):
        PoseConfig.from_official_kwargs({"h_stddev": "x"})  # was float()'s bare ValueError
    assert PoseConfig.from_official_kwargs({"h_stddev": "0.5"}).yaw_stddev == 0.5


def test_a_pose_prior_centred_past_a_pole_is_refused():
    """Training clamped such cameras, and the first preview (Camera.from_angles) then failed mid-run."""
    with pytest.raises(ConfigError, match="pitch_mean must run from 0 .above. to pi .below., got 3.3"):
        PoseConfig(pitch_mean=3.3)
    assert PoseConfig(pitch_mean=math.pi).pitch_mean == math.pi
