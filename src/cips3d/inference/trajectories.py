"""Camera paths for videos: the official CIPS-3D trajectories (spec section 6), a turntable, a still.

Every function returns a `Trajectory`: one camera per frame and that frame's field of view. The frame
is y-up (see `cips3d.rendering.cameras`): yaw = pitch = pi/2 is the camera at (0, 0, 1) looking down
-z at the face. Angles are in radians, fields of view in degrees, distances in world units (the
cameras of the official videos sit on the unit sphere).

    traj = make_trajectory("circle_near_far", num_frames=30)   # 60 frames: 2 periods, zoom in and out
    camera, fov = traj.frame(0)                                 # Camera of batch 1, degrees
    yaw, pitch = traj.angles()                                  # [N] labels of every frame
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from cips3d import constants as K
from cips3d.config import finite_number, is_real_number, is_whole_number, whole_count
from cips3d.errors import ConfigError
from cips3d.rendering.cameras import (
    PITCH_RULE,
    Camera,
    angles_from_position,
    check_camera_radius,
    clamp_pitch,
    is_pitch,
    position_from_angles,
)
from cips3d.words import counted

# Official defaults of the video page (spec 6: st_web render_video_web).
NUM_FRAMES = 30
ALPHA_PIDIV = 15.0  # cone half-angle pi / 15 = 12 degrees
PERIODS = 2
MAX_FOV = 20.0  # the near/far modes zoom from fov 12 to 20 and back
TRANSLATE_DIST = 0.04
NUM_SAMPLES_TRANSLATE = 30  # split into 4 segments of 30 // 4 = 7 frames per axis
YAW_SWEEP_MARGIN = 1.0  # the yaw sweep runs over [1, pi - 1] rad
ORBIT_FRAMES = 60
MAX_FRAMES = 1_000_000  # 9 hours at 30 fps; a billion asked for 8 GB of camera positions at once


@dataclass(frozen=True)
class Trajectory:
    """N frames of a camera path."""

    cameras: Camera
    """N cameras (batch = frame): positions, viewing directions and, where they roll, up vectors."""
    fov: tuple[float, ...]
    """Full field of view of each frame in degrees."""

    def __post_init__(self) -> None:
        if len(self.fov) != self.cameras.batch:
            raise ConfigError(
                f"{counted(len(self.fov), 'field of view', 'fields of view')} for "
                f"{counted(self.cameras.batch, 'camera')}."
            )
        wrong = [f for f in self.fov if not (is_real_number(f) and 0 < f < 180)]  # NaN fails too
        if wrong:  # said when the video would have failed at that frame, after the earlier ones
            raise ConfigError(f"a trajectory's fields of view must be in (0, 180) degrees; got {wrong[0]!r}.")

    @property
    def num_frames(self) -> int:
        return self.cameras.batch

    def frame(self, index: int) -> tuple[Camera, float]:
        """The camera (batch 1) and fov (degrees) of frame `index` (negative counts from the end, as in a
        list)."""
        n = self.num_frames
        if not is_whole_number(index):  # 1.0 failed inside a slice
            raise ConfigError(f"a frame index must be a whole number, got {index!r}.")
        if not -n <= index < n:
            raise IndexError(f"frame {index} of a trajectory of {counted(n, 'frame')}.")
        index = int(index) % n
        return self.cameras.select(slice(index, index + 1)), self.fov[index]

    def angles(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(yaw [N], pitch [N]) labels in radians: yaw = atan2(z, x), pitch = atan2(sqrt(x^2 + z^2), y)
        of each camera position (the official overlay text)."""
        return angles_from_position(self.cameras.origin)

    def select(self, indices: Sequence[int]) -> Trajectory:
        """The frames at `indices`, in that order (repeats allowed)."""
        index = list(indices)  # read once (a generator, say); the cameras check it
        cameras = self.cameras.select(index)
        return Trajectory(cameras, tuple(self.fov[i] for i in index))

    def looped(self, num_frames: int) -> Trajectory:
        """`num_frames` frames that run through this path again and again (frame i is i mod N)."""
        num_frames = _frame_count(num_frames)
        return self.select([i % self.num_frames for i in range(num_frames)])


def _frame_count(num_frames: int) -> int:
    """`num_frames` as an int from 1 to MAX_FRAMES (the bound every trajectory's count is held to)."""
    return whole_count(num_frames, "num_frames", maximum=MAX_FRAMES)


class TooManyFrames(ConfigError):
    """Settings of a trajectory whose frames add up to more than MAX_FRAMES; `frames` is their total
    (a caller that words the limit in its own flags reads it)."""

    def __init__(self, message: str, frames: int) -> None:
        super().__init__(message)
        self.frames = frames


def _check_turns(num_frames: int, periods: int, shift_frames: int = 0, turns: str = "periods") -> None:
    """`periods` turns of `num_frames` frames each, after `shift_frames` frames of parallel shifts: at
    most MAX_FRAMES frames in all, said before any camera is made (a turn of 1,000,000 frames made a
    near/far trajectory of 2,000,000 first)."""
    whole_count(periods, "periods", maximum=MAX_FRAMES)
    frames = shift_frames + num_frames * periods
    if frames > MAX_FRAMES:
        shifts = f"{shift_frames:,} shift frames + " if shift_frames else ""
        raise TooManyFrames(
            f"{shifts}{num_frames:,} frames x {periods:,} {turns} is more than {MAX_FRAMES:,} frames.", frames
        )


def _check_fov(*fovs: float) -> None:
    for fov in fovs:
        if not (0 < finite_number(fov, "fov") < 180):
            raise ConfigError(f"fov must be in (0, 180) degrees, got {fov}.")


def _check_alpha_pidiv(alpha_pidiv: float) -> float:
    """The cone half-angle pi / alpha_pidiv in radians; it must lie in (0, pi/2]."""
    if not finite_number(alpha_pidiv, "alpha_pidiv") >= 2:
        raise ConfigError(f"alpha_pidiv must be >= 2 (a cone of at most 90 degrees), got {alpha_pidiv}.")
    return math.pi / alpha_pidiv


def _looking_at_origin(origin: torch.Tensor, up: torch.Tensor | None = None) -> Camera:
    """float64 positions [N, 3] -> float32 cameras whose viewing direction is -origin."""
    origin = origin.float()
    return Camera(origin=origin, forward=-origin, up=None if up is None else up.float())


def _cone_positions(alpha: float, num_samples: int, periods: int, radius: float) -> torch.Tensor:
    """[N * periods, 3] float64 points on a cone of half-angle `alpha` around +z:
    (r sin a cos b, r sin a sin b, r cos a), b running from 2 pi periods down to 0."""
    check_camera_radius(radius)
    beta = torch.linspace(1, 0, num_samples * periods, dtype=torch.float64) * (2 * math.pi * periods)
    ring = radius * math.sin(alpha)
    z = torch.full_like(beta, radius * math.cos(alpha))
    return torch.stack([ring * torch.cos(beta), ring * torch.sin(beta), z], dim=-1)


def _check_zoom(fov: float, max_fov: float) -> None:
    """The near/far modes zoom out from fov to max_fov: at or past max_fov there is nothing to zoom
    (or the zoom would run backwards), which a video would show without a word."""
    _check_fov(fov, max_fov)
    if not fov < max_fov:
        raise ConfigError(f"the near/far trajectories zoom out from fov to max_fov: fov {fov} must be under "
                          f"max_fov {max_fov}.")  # fmt: skip


def _fov_ramp(fov: float, max_fov: float, num_frames: int) -> list[float]:
    """fov -> max_fov linearly over `num_frames` frames, then back down the same steps."""
    up = (fov + torch.linspace(0, 1, num_frames, dtype=torch.float64) * (max_fov - fov)).tolist()
    return up + up[::-1]


def yaw(num_frames: int = NUM_FRAMES, *, fov: float = K.FOV_DEGREES, radius: float = 1.0) -> Trajectory:
    """A horizontal sweep in front of the object: positions r (cos t, 0, sin t) for
    t = linspace(1, pi - 1, N) rad (about +-0.57 rad around the front), pitch pi/2."""
    _frame_count(num_frames)
    _check_fov(fov)
    check_camera_radius(radius)
    t = torch.linspace(YAW_SWEEP_MARGIN, math.pi - YAW_SWEEP_MARGIN, num_frames, dtype=torch.float64)
    origin = radius * torch.stack([torch.cos(t), torch.zeros_like(t), torch.sin(t)], dim=-1)
    return Trajectory(_looking_at_origin(origin), (float(fov),) * num_frames)


def circle(
    num_frames: int = NUM_FRAMES,
    *,
    alpha_pidiv: float = ALPHA_PIDIV,
    periods: int = PERIODS,
    fov: float = K.FOV_DEGREES,
    radius: float = 1.0,
) -> Trajectory:
    """`periods` turns on a cone of half-angle pi / alpha_pidiv around +z, N frames per turn
    (N * periods in all), always looking at the origin."""
    _frame_count(num_frames)
    _check_turns(num_frames, periods)
    _check_fov(fov)
    origin = _cone_positions(_check_alpha_pidiv(alpha_pidiv), num_frames, periods, radius)
    return Trajectory(_looking_at_origin(origin), (float(fov),) * (num_frames * periods))


def circle_near_far(
    num_frames: int = NUM_FRAMES,
    *,
    alpha_pidiv: float = ALPHA_PIDIV,
    fov: float = K.FOV_DEGREES,
    max_fov: float = MAX_FOV,
    radius: float = 1.0,
) -> Trajectory:
    """`circle` with 2 periods (2N frames) while the fov ramps fov -> max_fov over the first N
    frames and back over the last N: a zoom by fov, the camera distance stays fixed."""
    _frame_count(num_frames)
    _check_turns(num_frames, 2, turns="turns (zooming out, then in)")
    _check_zoom(fov, max_fov)
    origin = _cone_positions(_check_alpha_pidiv(alpha_pidiv), num_frames, 2, radius)
    return Trajectory(_looking_at_origin(origin), tuple(_fov_ramp(fov, max_fov, num_frames)))


def _translation_offsets(num_samples: int, distance: float) -> torch.Tensor:
    """0 -> +d -> 0 -> -d -> 0 in 4 segments of num_samples // 4 frames each (segment ends repeat)."""
    n = num_samples // 4
    ends = [(0.0, distance), (distance, 0.0), (0.0, -distance), (-distance, 0.0)]
    return torch.cat([torch.linspace(a, b, n, dtype=torch.float64) for a, b in ends])


def _shift_frames(num_samples: int) -> int:
    """The frames of `_translations`: 2 axes x 4 segments of num_samples // 4."""
    whole_count(num_samples, "num_samples_translate", minimum=4, maximum=MAX_FRAMES)
    return 2 * 4 * (num_samples // 4)


def _translations(num_samples: int, distance: float, alpha: float, radius: float) -> torch.Tensor:
    """[2 * 4 * (num_samples // 4), 3] float64 positions: a shift along x, then along y, at
    z = r cos(alpha) (the cameras look straight down -z: a parallel shift, not an orbit)."""
    distance = finite_number(distance, "translate_dist")
    check_camera_radius(radius)
    offsets = _translation_offsets(num_samples, distance)
    zeros = torch.zeros_like(offsets)
    depth = torch.full_like(offsets, radius * math.cos(alpha))
    along_x = torch.stack([offsets, zeros, depth], dim=-1)
    along_y = torch.stack([zeros, offsets, depth], dim=-1)
    return torch.cat([along_x, along_y])


def _straight_ahead(origin: torch.Tensor) -> torch.Tensor:
    """[N, 3] viewing directions (0, 0, -1) for the translation frames."""
    forward = torch.zeros_like(origin)
    forward[:, 2] = -1
    return forward


def translate_circle_near_far(
    num_frames: int = NUM_FRAMES,
    *,
    num_samples_translate: int = NUM_SAMPLES_TRANSLATE,
    translate_dist: float = TRANSLATE_DIST,
    alpha_pidiv: float = ALPHA_PIDIV,
    fov: float = K.FOV_DEGREES,
    max_fov: float = MAX_FOV,
    radius: float = 1.0,
) -> Trajectory:
    """A parallel shift along x (0 -> +d -> 0 -> -d -> 0), the same along y, both at fixed fov and
    looking down -z from z = r cos(pi / alpha_pidiv), then `circle_near_far`.

    Frames: 2 * 4 * (num_samples_translate // 4) + 2 * num_frames (56 + 2N with the defaults).
    """
    _frame_count(num_frames)
    _check_turns(num_frames, 2, _shift_frames(num_samples_translate), turns="turns (zooming out, then in)")
    _check_zoom(fov, max_fov)
    alpha = _check_alpha_pidiv(alpha_pidiv)
    shift = _translations(num_samples_translate, translate_dist, alpha, radius)
    cone = _cone_positions(alpha, num_frames, 2, radius)
    camera = Camera(
        origin=torch.cat([shift, cone]).float(), forward=torch.cat([_straight_ahead(shift), -cone]).float()
    )
    fovs = [float(fov)] * shift.shape[0] + _fov_ramp(fov, max_fov, num_frames)
    return Trajectory(camera, tuple(fovs))


def translate_rotate(
    num_frames: int = NUM_FRAMES,
    *,
    num_samples_translate: int = NUM_SAMPLES_TRANSLATE,
    translate_dist: float = TRANSLATE_DIST,
    alpha_pidiv: float = ALPHA_PIDIV,
    periods: int = 1,
    fov: float = K.FOV_DEGREES,
    radius: float = 1.0,
) -> Trajectory:
    """The two parallel shifts of `translate_circle_near_far`, then a roll: the camera stays at
    (0, 0, r cos(pi / alpha_pidiv)) looking at the origin while its up vector (-sin b, cos b, 0)
    turns with b = linspace(0, 2 pi periods, N * periods). The fov is fixed."""
    _frame_count(num_frames)
    _check_turns(num_frames, periods, _shift_frames(num_samples_translate))
    _check_fov(fov)
    alpha = _check_alpha_pidiv(alpha_pidiv)
    shift = _translations(num_samples_translate, translate_dist, alpha, radius)
    beta = torch.linspace(0, 2 * math.pi * periods, num_frames * periods, dtype=torch.float64)
    still_at = torch.zeros(beta.shape[0], 3, dtype=torch.float64)
    still_at[:, 2] = radius * math.cos(alpha)
    roll_up = torch.stack([-torch.sin(beta), torch.cos(beta), torch.zeros_like(beta)], dim=-1)
    shift_up = torch.zeros_like(shift)
    shift_up[:, 1] = 1
    camera = Camera(
        origin=torch.cat([shift, still_at]).float(),
        forward=torch.cat([_straight_ahead(shift), -still_at]).float(),
        up=torch.cat([shift_up, roll_up]).float(),
    )
    return Trajectory(camera, (float(fov),) * camera.batch)


def orbit(
    num_frames: int = ORBIT_FRAMES,
    *,
    pitch: float = K.PITCH_MEAN,
    start_yaw: float = K.YAW_MEAN,
    fov: float = K.FOV_DEGREES,
    radius: float = 1.0,
) -> Trajectory:
    """A turntable: one full 360-degree yaw turn at `pitch`, starting in front (yaw pi/2).

    Frame k sits at yaw start_yaw + 2 pi k / N, so the turn is closed without a repeated frame: the
    frame after the last would be the first, and the video loops seamlessly.
    """
    _frame_count(num_frames)
    _check_fov(fov)
    check_camera_radius(radius)
    start_yaw, pitch = finite_number(start_yaw, "start_yaw"), finite_number(pitch, "pitch")
    if not is_pitch(pitch):  # 10 was clamped to pi without a word
        raise ConfigError(f"the orbit's pitch must run {PITCH_RULE}; got {pitch:g}.")
    yaws = start_yaw + torch.arange(num_frames, dtype=torch.float64) * (2 * math.pi / num_frames)
    pitches = clamp_pitch(torch.full_like(yaws, pitch))
    return Trajectory(
        _looking_at_origin(position_from_angles(yaws, pitches, radius)), (float(fov),) * num_frames
    )


def still(
    num_frames: int = NUM_FRAMES,
    *,
    yaw: float = K.YAW_MEAN,
    pitch: float = K.PITCH_MEAN,
    fov: float = K.FOV_DEGREES,
    radius: float = 1.0,
) -> Trajectory:
    """The same camera `Camera.from_angles(yaw, pitch, radius)` for every frame (for latent walks)."""
    _frame_count(num_frames)
    _check_fov(fov)
    return Trajectory(Camera.from_angles(yaw, pitch, radius, batch=num_frames), (float(fov),) * num_frames)


def check_trajectory(trajectory: object) -> Trajectory:
    """`trajectory`, or a `ConfigError` when it is not a `Trajectory` (a name, say)."""
    if not isinstance(trajectory, Trajectory):
        raise ConfigError(
            f"trajectory must be a Trajectory (see make_trajectory), got {type(trajectory).__name__}."
        )
    return trajectory


TrajectoryFn = Callable[..., Trajectory]
TRAJECTORIES: dict[str, TrajectoryFn] = {
    "orbit": orbit,
    "still": still,
    "yaw": yaw,
    "circle": circle,
    "circle_near_far": circle_near_far,
    "translate_circle_near_far": translate_circle_near_far,
    "translate_rotate": translate_rotate,
}
"""Trajectory functions by name; each takes `num_frames` and keyword `fov` (degrees)."""
ZOOMING = ("circle_near_far", "translate_circle_near_far")
"""The trajectories that zoom out from `fov` to MAX_FOV degrees and back."""


def trajectory_function(name: str) -> TrajectoryFn:
    """The trajectory function called `name`; an unknown name is a ConfigError listing the known ones."""
    try:
        return TRAJECTORIES[name]
    except KeyError:
        known = ", ".join(TRAJECTORIES)
        raise ConfigError(f"unknown trajectory {name!r}; known trajectories: {known}.") from None


def make_trajectory(name: str, **kwargs: float | int) -> Trajectory:
    """`TRAJECTORIES[name](**kwargs)`, e.g. make_trajectory('circle', num_frames=24, periods=1); a
    setting the trajectory does not have is a `ConfigError` listing those it has."""
    function = trajectory_function(name)
    known = inspect.signature(function).parameters
    unknown = [key for key in kwargs if key not in known]
    if unknown:
        raise ConfigError(
            f"the {name} trajectory has no setting {unknown[0]!r}; its settings: {', '.join(known)}."
        )
    return function(**kwargs)
