"""Camera trajectories against their closed forms (spec section 6)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cips3d.errors import ConfigError
from cips3d.inference.trajectories import (
    TRAJECTORIES,
    circle,
    circle_near_far,
    make_trajectory,
    orbit,
    still,
    translate_circle_near_far,
    translate_rotate,
    yaw,
)
from cips3d.rendering.cameras import Camera

ATOL = 1e-6
ALPHA = math.pi / 15  # the official cone half-angle (alpha_pidiv 15)


def unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True)


def looks_at_origin(camera: Camera) -> bool:
    return torch.allclose(unit(camera.forward), -unit(camera.origin), atol=ATOL)


def test_yaw_sweeps_the_front_on_the_unit_circle():
    traj = yaw(num_frames=7)
    t = torch.linspace(1, math.pi - 1, 7, dtype=torch.float64)
    expected = torch.stack([torch.cos(t), torch.zeros_like(t), torch.sin(t)], -1).float()
    assert torch.allclose(traj.cameras.origin, expected, atol=ATOL)
    assert looks_at_origin(traj.cameras) and traj.fov == (12.0,) * 7
    yaws, pitches = traj.angles()
    assert torch.allclose(yaws, t.float(), atol=ATOL)
    assert torch.allclose(pitches, torch.full((7,), math.pi / 2), atol=ATOL)


def test_circle_stays_on_a_cone_of_half_angle_pi_over_15():
    traj = circle(num_frames=6, periods=2)
    assert traj.num_frames == 12
    origin = traj.cameras.origin.double()
    assert torch.allclose(origin.norm(dim=-1), torch.ones(12, dtype=torch.float64), atol=ATOL)
    half_angle = torch.arccos(origin[:, 2] / origin.norm(dim=-1))
    assert torch.allclose(half_angle, torch.full((12,), ALPHA, dtype=torch.float64), atol=1e-5)
    # beta runs from 2 pi periods down to 0: (sin a cos b, sin a sin b, cos a)
    beta = torch.linspace(1, 0, 12, dtype=torch.float64) * 4 * math.pi
    assert torch.allclose(origin[:, 0], math.sin(ALPHA) * torch.cos(beta), atol=ATOL)
    assert torch.allclose(origin[:, 1], math.sin(ALPHA) * torch.sin(beta), atol=ATOL)
    assert looks_at_origin(traj.cameras)
    assert circle(num_frames=5, periods=1, alpha_pidiv=6).num_frames == 5


def test_circle_near_far_zooms_by_fov_from_12_to_20_and_back():
    traj = circle_near_far(num_frames=5)
    assert traj.num_frames == 10  # always two periods
    assert traj.fov == (12.0, 14.0, 16.0, 18.0, 20.0, 20.0, 18.0, 16.0, 14.0, 12.0)
    assert torch.equal(traj.cameras.origin, circle(num_frames=5, periods=2).cameras.origin)


@pytest.mark.parametrize("trajectory", [circle_near_far, translate_circle_near_far])
def test_a_zoom_needs_its_far_fov_above_its_near_one(trajectory):
    assert trajectory(num_frames=2, fov=30.0, max_fov=40.0).fov[-2:] == (40.0, 30.0)
    for fov in (20.0, 25.0):  # nothing to zoom; a zoom running backwards
        with pytest.raises(ConfigError, match=f"fov {fov} must be under max_fov 20"):
            trajectory(num_frames=2, fov=fov)


def test_translate_circle_near_far_shifts_in_parallel_then_circles():
    traj = translate_circle_near_far(num_frames=4)
    shift = 2 * 4 * (30 // 4)  # 7 frames per segment, 4 segments, along x then y
    assert traj.num_frames == shift + 8
    origin, forward = traj.cameras.origin[:shift], traj.cameras.forward[:shift]
    assert torch.equal(forward, torch.tensor([0.0, 0.0, -1.0]).expand(shift, 3))  # keeps looking down -z
    assert torch.allclose(origin[:, 2], torch.full((shift,), math.cos(ALPHA)), atol=ATOL)
    x, y = origin[:28], origin[28:]
    assert torch.equal(x[:, 1], torch.zeros(28)) and torch.equal(y[:, 0], torch.zeros(28))
    assert torch.allclose(x[:, 0], y[:, 1])
    expected = [0.0, 0.04, 0.0, -0.04, 0.0]  # 0 -> +d -> 0 -> -d -> 0
    assert [round(float(x[i, 0]), 6) for i in (0, 6, 13, 20, 27)] == expected
    cam2world = traj.cameras.select(slice(0, shift)).cam2world()
    assert torch.allclose(cam2world[:, :3, :3], torch.eye(3).expand(shift, 3, 3), atol=ATOL)  # no rotation
    ramp = [12.0, 14 + 2 / 3, 17 + 1 / 3, 20.0]
    assert traj.fov[:shift] == (12.0,) * shift and traj.fov[shift:] == pytest.approx(ramp + ramp[::-1])
    assert looks_at_origin(traj.cameras.select(slice(shift, None)))


def test_translate_rotate_rolls_the_up_vector():
    traj = translate_rotate(num_frames=5)
    roll = traj.cameras.select(slice(56, None))
    assert traj.num_frames == 56 + 5 and traj.fov == (12.0,) * 61
    assert torch.allclose(roll.origin, torch.tensor([0.0, 0.0, math.cos(ALPHA)]).expand(5, 3), atol=ATOL)
    beta = torch.linspace(0, 2 * math.pi, 5)
    up_world = roll.cam2world()[:, :3, 1]  # the camera's up axis in the world
    expected = torch.stack([-torch.sin(beta), torch.cos(beta), torch.zeros(5)], -1)
    assert torch.allclose(up_world, expected, atol=1e-5)
    # a quarter turn in: image up points along -x; half a turn: the image is upside down
    assert torch.allclose(up_world[1], torch.tensor([-1.0, 0.0, 0.0]), atol=1e-5)
    assert torch.allclose(up_world[2], torch.tensor([0.0, -1.0, 0.0]), atol=1e-5)
    shift_up = traj.cameras.select(slice(0, 56)).cam2world()[:, :3, 1]
    assert torch.allclose(shift_up, torch.tensor([0.0, 1.0, 0.0]).expand(56, 3), atol=ATOL)


def test_orbit_turns_once_and_returns_to_the_start():
    traj = orbit(num_frames=8)
    origin = traj.cameras.origin.double()
    assert torch.allclose(origin[0], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), atol=ATOL)  # front
    assert torch.allclose(origin[:, 1], torch.zeros(8, dtype=torch.float64), atol=ATOL)
    # equal steps of 2 pi / N all the way round: the step after the last frame lands on the first
    step = 2 * math.pi / 8
    nxt = torch.roll(origin, -1, dims=0)
    angle = torch.atan2(torch.cross(origin, nxt, dim=-1).norm(dim=-1), (origin * nxt).sum(-1))
    assert torch.allclose(angle, torch.full((8,), step, dtype=torch.float64), atol=1e-6)
    yaws, pitches = traj.angles()
    turned = torch.remainder(yaws.double() - math.pi / 2, 2 * math.pi)
    assert torch.allclose(turned, torch.arange(8, dtype=torch.float64) * step, atol=1e-6)
    assert torch.allclose(pitches, torch.full((8,), math.pi / 2), atol=ATOL) and looks_at_origin(traj.cameras)


def test_still_repeats_one_camera():
    traj = still(num_frames=3, yaw=1.3, pitch=1.4)
    ref = Camera.from_angles(1.3, 1.4)
    assert torch.equal(traj.cameras.origin, ref.origin.expand(3, 3))
    assert torch.equal(traj.cameras.forward, ref.forward.expand(3, 3))
    camera, fov = traj.frame(2)
    assert camera.batch == 1 and fov == 12.0


def test_a_frame_counts_from_the_end_like_a_list_and_one_past_it_is_named():
    traj = circle_near_far(num_frames=4).select([0, 1, 2, 3])
    last, fov = traj.frame(-1)  # was: a camera batch of 0 and the last fov
    assert last.batch == 1 and torch.equal(last.origin, traj.cameras.origin[3:]) and fov == traj.fov[3]
    for index in (4, -5):
        with pytest.raises(IndexError, match=f"frame {index} of a trajectory of 4 frames"):
            traj.frame(index)


def test_looped_and_select_repeat_frames():
    traj = circle_near_far(num_frames=2)
    looped = traj.looped(9)
    assert looped.num_frames == 9 and looped.fov[4:8] == traj.fov
    assert torch.equal(looped.cameras.origin[5], traj.cameras.origin[1])


@pytest.mark.parametrize("name", sorted(TRAJECTORIES))
def test_every_trajectory_takes_num_frames_and_fov(name):
    traj = make_trajectory(name, num_frames=3, fov=15.0)
    assert traj.fov[0] == 15.0 and traj.num_frames >= 3
    assert traj.cameras.origin.dtype == torch.float32 and torch.isfinite(traj.cameras.cam2world()).all()


def test_unknown_names_and_bad_numbers_are_config_errors():
    with pytest.raises(ConfigError, match="unknown trajectory 'spiral'.*orbit.*translate_rotate"):
        make_trajectory("spiral")
    with pytest.raises(ConfigError, match="num_frames"):
        orbit(num_frames=0)
    with pytest.raises(ConfigError, match="num_samples_translate"):
        translate_rotate(num_samples_translate=3)
    with pytest.raises(ConfigError, match="fov"):
        circle_near_far(max_fov=180.0)
    with pytest.raises(ConfigError, match="alpha_pidiv"):
        circle(alpha_pidiv=0.5)
    for make in (orbit, circle, translate_rotate):  # were cameras behind the object, looking away
        with pytest.raises(ConfigError, match="the camera radius must be a positive number"):
            make(num_frames=4, radius=-1.0)
    assert orbit(num_frames=np.int64(4)).num_frames == 4  # numpy's integers count as counts elsewhere


@pytest.mark.parametrize(
    ("make", "setting", "value"),
    [
        (yaw, "fov", "12"),  # a TypeError inside math.isfinite
        (orbit, "pitch", "a"),  # a TypeError inside torch.full_like
        (orbit, "start_yaw", math.nan),  # every camera NaN
        (translate_rotate, "translate_dist", math.nan),
        (circle, "alpha_pidiv", "3"),
    ],
)
def test_a_setting_that_is_not_a_finite_number_is_named(make, setting, value):
    with pytest.raises(ConfigError, match=f"{setting} must be a finite number, got {value!r}"):
        make(num_frames=4, **{setting: value})


def test_no_frames_and_settings_a_trajectory_lacks_are_named():
    traj = yaw(4)
    for count in (0, -1):  # were empty trajectories that rendered nothing
        with pytest.raises(
            ConfigError, match=f"num_frames must be a whole number from 1 to 1,000,000, got {count}"
        ):
            traj.looped(count)
    with pytest.raises(ConfigError, match="select at least one camera"):
        traj.select([])
    with pytest.raises(IndexError, match="camera 9 of a batch of 4"):
        traj.select([0, 9])
    with pytest.raises(ConfigError, match="select takes a batch index, a slice or a list of them, got str"):
        traj.cameras.select("a")  # was a TypeError inside torch
    with pytest.raises(ConfigError, match="select at least one camera"):
        traj.cameras.select(slice(2, 2))
    with pytest.raises(ConfigError, match="1 field of view for 4 cameras"):  # was a plain ValueError
        type(traj)(traj.cameras, (12.0,))
    with pytest.raises(
        ConfigError, match="the yaw trajectory has no setting 'periods'; its settings: num_frames"
    ):
        make_trajectory("yaw", periods=2)  # was a TypeError about yaw()'s keyword arguments


def test_frame_counts_past_any_video_are_refused_before_allocating():
    from cips3d.inference.trajectories import MAX_FRAMES  # noqa: PLC0415

    for make in (yaw, orbit, circle):
        with pytest.raises(ConfigError, match=f"num_frames must be a whole number from 1 to {MAX_FRAMES:,}"):
            make(num_frames=10**9)  # asked for 8 GB of camera positions at once
    with pytest.raises(ConfigError, match="frames x 2,000 periods is more than"):
        circle(num_frames=1000, periods=2000)
    with pytest.raises(ConfigError, match="num_frames must be a whole number from 1 to"):
        yaw(4).looped(10**9)


def test_turned_and_shifted_frames_are_counted_before_any_camera_is_made():
    """A near/far turn of 600,000 frames runs twice (1,200,000) and a translate trajectory adds its 56
    shift frames: both totals are refused by the trajectory itself, with the total for a caller."""
    from cips3d.inference.trajectories import TooManyFrames  # noqa: PLC0415

    cases = [
        (lambda: circle_near_far(num_frames=600_000), 1_200_000),
        (lambda: translate_circle_near_far(num_frames=499_980), 56 + 999_960),
        (lambda: translate_rotate(num_frames=500_000, periods=2), 56 + 1_000_000),
    ]
    for make, total in cases:
        with pytest.raises(TooManyFrames, match="is more than 1,000,000 frames") as caught:
            make()
        assert caught.value.frames == total
    assert translate_circle_near_far(num_frames=4).num_frames == 56 + 8  # the count the check adds up
