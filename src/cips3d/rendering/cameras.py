"""Cameras: pose sampling, positions from angles, and look-at camera-to-world matrices (spec 2.1, 2.4).

Frame: world y is up. A camera at yaw theta and pitch phi on a sphere of radius r sits at
(r sin(phi) cos(theta), r cos(phi), r sin(phi) sin(theta)); yaw = pitch = pi/2 is (0, 0, r), in front of
the face, looking down -z. Camera space is OpenGL-like: +x right, +y up, looking down -z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from cips3d import constants as K
from cips3d.config import PoseConfig, given_or_default, is_real_number, is_whole_number, whole_count
from cips3d.devices import usable_device
from cips3d.errors import ConfigError
from cips3d.seeding import draw


def truncated_standard_normal(candidates: torch.Tensor) -> torch.Tensor:
    """The official truncated normal: of 4 standard-normal candidates [..., 4], the first inside (-2, 2).

    If none is inside (probability 4e-6), the first candidate is kept, as in the official code.
    """
    bound = K.TRUNCATED_NORMAL_BOUND
    inside = (candidates > -bound) & (candidates < bound)
    index = inside.to(torch.uint8).argmax(dim=-1, keepdim=True)
    return candidates.gather(-1, index).squeeze(-1)


def sample_pose_angles(
    pose: PoseConfig,
    batch: int,
    generator: torch.Generator | None = None,
    *,
    yaw_draw: torch.Tensor | None = None,
    pitch_draw: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw camera angles from `pose` (pi-GAN's `sample_camera_positions`, every mode).

    Args:
        pose: the distribution.
        batch: number of cameras B.
        generator: source of the draws that are not injected.
        yaw_draw, pitch_draw: [B] or [B, 1] raw draws to use instead of drawing: standard normal for
            'gaussian'/'normal', U(0, 1) for 'uniform'/'spherical_uniform', [B, 4] normal candidates
            for 'truncated_gaussian'. 'hybrid' draws its coin and values from `generator`.
        device: where the angles live.

    Returns:
        (yaw [B], pitch [B]) in radians, float32; pitch clamped to [1e-5, pi - 1e-5].
    """
    pose = given_or_default(pose, PoseConfig, "pose")
    batch = whole_count(batch, "the number of cameras")
    mode = pose.mode
    if mode == "hybrid":  # a fair coin: a uniform box of twice the spread, or the gaussian
        coin = draw("rand", (), generator, "cpu").item()
        mode, scale = ("uniform", 2.0) if coin < 0.5 else ("gaussian", 1.0)
        pose = replace(
            pose, mode=mode, yaw_stddev=scale * pose.yaw_stddev, pitch_stddev=scale * pose.pitch_stddev
        )

    def raw(injected: torch.Tensor | None, kind: str, extra: tuple[int, ...] = ()) -> torch.Tensor:
        if injected is not None:
            want = (batch, *extra)
            if not (isinstance(injected, torch.Tensor) and injected.is_floating_point()):
                raise ConfigError(
                    f"yaw and pitch draws must be floating-point tensors, got {injected!r:.60}."
                )
            if injected.device.type == "cpu" and not bool(torch.isfinite(injected).all()):
                raise ConfigError("yaw and pitch draws hold NaN or infinite values.")
            if injected.numel() != math.prod(want) or injected.shape[0] != batch:
                raise ConfigError(
                    f"a {mode!r} pose takes yaw and pitch draws of {list(want)} (one row per camera), "
                    f"got {list(injected.shape)}."
                )
            return injected.to(device=device, dtype=torch.float32).reshape(
                (batch, *extra) if extra else (batch,)
            )
        return draw(kind, (batch, 1, *extra), generator, device).reshape(
            (batch, *extra) if extra else (batch,)
        )

    if mode in ("gaussian", "normal"):
        yaw = raw(yaw_draw, "randn") * pose.yaw_stddev + pose.yaw_mean
        pitch = raw(pitch_draw, "randn") * pose.pitch_stddev + pose.pitch_mean
    elif mode == "uniform":
        yaw = (raw(yaw_draw, "rand") - 0.5) * 2 * pose.yaw_stddev + pose.yaw_mean
        pitch = (raw(pitch_draw, "rand") - 0.5) * 2 * pose.pitch_stddev + pose.pitch_mean
    elif mode == "truncated_gaussian":
        tries = (K.TRUNCATED_NORMAL_TRIES,)
        yaw = truncated_standard_normal(raw(yaw_draw, "randn", tries)) * pose.yaw_stddev + pose.yaw_mean
        pitch = (
            truncated_standard_normal(raw(pitch_draw, "randn", tries)) * pose.pitch_stddev + pose.pitch_mean
        )
    elif mode == "spherical_uniform":  # uniform on the sphere: pitch = arccos(1 - 2 v), v uniform
        yaw = (raw(yaw_draw, "rand") - 0.5) * 2 * pose.yaw_stddev + pose.yaw_mean
        v = (raw(pitch_draw, "rand") - 0.5) * 2 * (pose.pitch_stddev / math.pi) + pose.pitch_mean / math.pi
        pitch = torch.arccos(1 - 2 * v.clamp(K.PITCH_CLAMP_EPS, 1 - K.PITCH_CLAMP_EPS))
    else:  # "mean"
        yaw = torch.full((batch,), pose.yaw_mean, device=device)
        pitch = torch.full((batch,), pose.pitch_mean, device=device)
    return yaw, clamp_pitch(pitch)


ANGLE_RULE = f"finite radians of at most {K.MAX_ANGLE:g} either way"
"""What a yaw or pitch must be, as every refusal of one words it."""


def is_camera_angle(value: float) -> bool:
    """Whether a yaw or pitch (radians) is finite and at most MAX_ANGLE either way; NaN is not."""
    return abs(value) <= K.MAX_ANGLE


PITCH_RULE = "from 0 (the camera straight above) through pi/2 (level) to pi (straight below), in radians"
"""What a pitch a user gives must be, as the commands and `InversionConfig` word it."""


def is_pitch(value: float) -> bool:
    """Whether `value` is a pitch the camera can take: the renderer clamps anything past a pole to it
    (as the official code does), so 4 radians rendered what pi does, without a word."""
    return 0 <= value <= math.pi


PITCH_ROUNDING = 1e-6
"""How far past 0 or pi a pitch tensor may lie and still count as the pole: float32 rounds pi up by
9e-8, and an angle computed in float32 (a fit, a grid) may land a few units past it."""


def clamp_pitch(pitch: torch.Tensor) -> torch.Tensor:
    """Keep the pitch off the poles, where the look-at frame with up = +y is undefined."""
    return pitch.clamp(K.PITCH_CLAMP_EPS, math.pi - K.PITCH_CLAMP_EPS)


def position_from_angles(yaw: torch.Tensor, pitch: torch.Tensor, radius: float = 1.0) -> torch.Tensor:
    """yaw [B], pitch [B] (radians) -> camera position [B, 3] on the sphere of `radius`."""
    return torch.stack(
        [
            radius * torch.sin(pitch) * torch.cos(yaw),
            radius * torch.cos(pitch),
            radius * torch.sin(pitch) * torch.sin(yaw),
        ],
        dim=-1,
    )


def angles_from_position(position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """position [B, 3] -> (yaw [B], pitch [B]): yaw = atan2(z, x), pitch = atan2(sqrt(x^2 + z^2), y)."""
    x, y, z = position.unbind(-1)
    return torch.atan2(z, x), torch.atan2(torch.sqrt(x * x + z * z), y)


def normalize(v: torch.Tensor) -> torch.Tensor:
    """v [..., 3] / |v|."""
    return v / torch.norm(v, dim=-1, keepdim=True)


ALONG_UP_EPS = 1e-6  # |up x forward| below this (relative): the view is along the up hint


def look_at(origin: torch.Tensor, forward: torch.Tensor, up: torch.Tensor | None = None) -> torch.Tensor:
    """Camera-to-world matrices from positions and viewing directions (pi-GAN's construction).

    Args:
        origin: [B, 3] camera positions.
        forward: [B, 3] viewing directions (need not be unit length).
        up: [B, 3] or [3] approximate up vectors; world +y when None.

    Returns:
        [B, 4, 4]: rotation columns (right, up, -forward) = (-left, up, -forward), translation origin.
    """
    forward = normalize(forward)
    if up is None:
        up = torch.tensor([0.0, 1.0, 0.0], device=forward.device, dtype=forward.dtype)
    up = up.to(forward).expand_as(forward)
    left = torch.cross(up, forward, dim=-1)
    # A camera looking along its up hint (straight down or up, with +y) has no left: take the frame that
    # nearby views give, seen from +z (up = -z looking down, +z looking up). Selected, so exact elsewhere.
    along = left.norm(dim=-1, keepdim=True) <= ALONG_UP_EPS * up.norm(dim=-1, keepdim=True)
    fallback = torch.zeros_like(forward)
    steep = forward[..., 1].abs() > forward[..., 2].abs()
    fallback[..., 2] = torch.where(steep, torch.sign(forward[..., 1]), torch.zeros_like(forward[..., 1]))
    fallback[..., 1] = (~steep).to(forward.dtype)
    left = normalize(torch.where(along, torch.cross(fallback, forward, dim=-1), left))
    up = normalize(torch.cross(forward, left, dim=-1))
    cam2world = torch.eye(4, device=forward.device, dtype=forward.dtype).repeat(forward.shape[0], 1, 1)
    cam2world[:, :3, :3] = torch.stack((-left, up, -forward), dim=-1)
    cam2world[:, :3, 3] = origin
    return cam2world


@dataclass(frozen=True)
class Camera:
    """Extrinsics of B cameras: where each sits, where it looks, and which way is up.

    Build one with `Camera.from_angles`, `Camera.look_at_origin`, or directly from an origin and a
    viewing direction (the official `forward_camera_pos_and_lookup`: `forward` is a direction, not a
    target point, and the origin is used as given, not projected onto a sphere).
    """

    origin: torch.Tensor
    """[B, 3] camera positions in world space."""
    forward: torch.Tensor
    """[B, 3] viewing directions (normalised when the matrix is built)."""
    up: torch.Tensor | None = None
    """[B, 3] or [3] up hints; world +y when None."""
    yaw: torch.Tensor | None = None
    """[B] yaw the camera was built from (radians), if any."""
    pitch: torch.Tensor | None = None
    """[B] pitch the camera was built from (radians), if any."""

    def __post_init__(self) -> None:
        for name in ("origin", "forward", "up", "yaw", "pitch"):  # lists and arrays of numbers are welcome
            value = getattr(self, name)
            if value is not None and not (isinstance(value, torch.Tensor) and value.is_floating_point()):
                object.__setattr__(self, name, _numbers(value, f"camera {name}"))
        if self.origin.ndim != 2 or self.origin.shape[-1] != 3:
            raise ConfigError(f"camera origin must be [B, 3], got {tuple(self.origin.shape)}.")
        if self.forward.shape != self.origin.shape:
            shapes = f"{tuple(self.forward.shape)} vs {tuple(self.origin.shape)}"
            raise ConfigError(f"camera forward and origin must have the same shape, got {shapes}.")
        if self.up is not None and tuple(self.up.shape) not in ((3,), (self.batch, 3)):
            raise ConfigError(f"camera up must be [3] or [{self.batch}, 3], got {tuple(self.up.shape)}.")
        for name in ("yaw", "pitch"):
            value = getattr(self, name)
            if value is not None and tuple(value.shape) != (self.batch,):
                raise ConfigError(
                    f"camera {name} must be [{self.batch}] like the origin, got {tuple(value.shape)}."
                )
        # Values are checked where that is free (CPU tensors); on a GPU a check would wait for the device.
        if self.forward.device.type == "cpu" and not bool(
            (torch.isfinite(self.origin).all() & torch.isfinite(self.forward).all()).item()
        ):
            raise ConfigError("camera origin and forward must be finite.")
        if self.up is not None and self.up.device.type == "cpu" and not bool(torch.isfinite(self.up).all()):
            raise ConfigError("camera up must be finite (a NaN up vector rendered an image of NaN).")
        if self.forward.device.type == "cpu" and bool((self.forward.norm(dim=-1) == 0).any().item()):
            raise ConfigError("a camera's forward (viewing direction) must not be zero.")

    @property
    def batch(self) -> int:
        return self.origin.shape[0]

    @classmethod
    def from_angles(
        cls,
        yaw: torch.Tensor | float,
        pitch: torch.Tensor | float,
        radius: float = 1.0,
        batch: int | None = None,
    ) -> Camera:
        """Cameras on a sphere looking at the origin; angles in radians, pitch from 0 (above) to pi
        (below), kept 1e-5 off the poles as the official code does. A pitch past a pole is a
        ConfigError (checked where free: CPU tensors): it rendered what the pole does, and angles given
        in degrees by mistake passed."""
        check_camera_radius(radius)
        yaw_t, pitch_t = (_numbers(a, name).to(torch.float32) for a, name in ((yaw, "yaw"), (pitch, "pitch")))
        if yaw_t.ndim > 1 or pitch_t.ndim > 1:
            shapes = f"{tuple(yaw_t.shape)} and {tuple(pitch_t.shape)}"
            raise ConfigError(f"camera angles must be numbers or [B] tensors, got shapes {shapes}.")
        yaw_t, pitch_t = yaw_t.reshape(-1), pitch_t.reshape(-1)
        for t in (yaw_t, pitch_t):
            if t.device.type == "cpu" and not bool((t.abs() <= K.MAX_ANGLE).all().item()):  # NaN fails too
                raise ConfigError(f"camera angles must be {ANGLE_RULE}.")
        if pitch_t.device.type == "cpu":
            outside = pitch_t[(pitch_t < -PITCH_ROUNDING) | (pitch_t > math.pi + PITCH_ROUNDING)]
            if outside.numel():
                raise ConfigError(f"camera pitch must run {PITCH_RULE}; got {float(outside[0]):g}.")
        n = max(yaw_t.numel(), pitch_t.numel()) if batch is None else batch
        if n < 1 or any(t.numel() not in (1, n) for t in (yaw_t, pitch_t)):
            raise ConfigError(
                f"cameras need a batch of 1 or more with one angle or one per camera; got batch {batch}, "
                f"{yaw_t.numel()} yaw and {pitch_t.numel()} pitch values."
            )
        yaw_t, pitch_t = yaw_t.expand(n).clone(), clamp_pitch(pitch_t.expand(n).clone())
        origin = position_from_angles(yaw_t, pitch_t, radius)
        return cls(origin=origin, forward=normalize(-origin), yaw=yaw_t, pitch=pitch_t)

    @classmethod
    def look_at_origin(cls, origin: torch.Tensor, up: torch.Tensor | None = None) -> Camera:
        """Cameras at `origin` [B, 3] looking at the world origin."""
        origin = _numbers(origin, "camera origin")
        if origin.device.type == "cpu" and bool((origin.norm(dim=-1) == 0).any().item()):
            raise ConfigError("a camera looking at the world origin cannot sit at it.")
        return cls(origin=origin, forward=normalize(-origin), up=up)

    @classmethod
    def cat(cls, cameras: list[Camera]) -> Camera:
        """One batch of the cameras of several. Where some have an up vector or angles and others not,
        the others get what None means for them: world +y, and zero angles (`pitch_yaw`)."""
        if not cameras:
            raise ConfigError("Camera.cat needs at least one camera.")

        def joined(name: str) -> torch.Tensor | None:
            values = [getattr(c, name) for c in cameras]
            if all(v is None for v in values):
                return None
            like = cameras[0].origin
            if name == "up":  # a shared [3] up vector becomes one row per camera
                plus_y = like.new_tensor([0.0, 1.0, 0.0])
                return torch.cat([(plus_y if v is None else v.to(like)).expand(c.batch, 3)
                                  for v, c in zip(values, cameras, strict=True)])  # fmt: skip
            return torch.cat(
                [like.new_zeros(c.batch) if v is None else v for v, c in zip(values, cameras, strict=True)]
            )

        return cls(joined("origin"), joined("forward"), joined("up"), joined("yaw"), joined("pitch"))

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Camera:
        """The cameras on `device` (a name as `devices.usable_device` reads it: 'cuda' where there is
        none is one sentence, not torch's assertion), in `dtype` when given."""
        device = usable_device(device)

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, dtype or t.dtype)

        return Camera(move(self.origin), move(self.forward), move(self.up), move(self.yaw), move(self.pitch))

    def select(self, index: int | slice | list[int]) -> Camera:
        """The cameras at `index` (a batch index, a slice or a list of them); an index past the batch is
        an IndexError naming it, a selection of no camera a ConfigError."""
        index = self._checked_index(index)

        def pick(t: torch.Tensor | None, batched: bool = True) -> torch.Tensor | None:
            return None if t is None else (t[index] if batched else t)

        up_batched = self.up is not None and self.up.ndim == 2
        return Camera(
            pick(self.origin), pick(self.forward), pick(self.up, up_batched), pick(self.yaw), pick(self.pitch)
        )

    def _checked_index(self, index: object) -> slice | list[int]:
        """`index` as a slice or a list of ints within the batch (a string failed inside torch, an empty
        selection gave a camera of batch 0)."""
        n = self.batch
        if isinstance(index, slice):
            picked = range(n)[index]
        elif is_whole_number(index) or isinstance(index, (list, tuple, range)):
            picked = [index] if is_whole_number(index) else list(index)
            wrong = [i for i in picked if not (is_whole_number(i) and -n <= i < n)]
            if wrong:
                raise IndexError(f"camera {wrong[0]!r} of a batch of {n}.")
            index = [int(i) for i in picked]
        else:
            raise ConfigError(
                f"select takes a batch index, a slice or a list of them, got {type(index).__name__}."
            )
        if len(picked) == 0:
            raise ConfigError("select at least one camera (a batch of none renders nothing).")
        return index

    def cam2world(self) -> torch.Tensor:
        """[B, 4, 4] camera-to-world matrices."""
        return look_at(self.origin, self.forward, self.up)

    def pitch_yaw(self) -> torch.Tensor:
        """[B, 2] (pitch, yaw) in radians of the angles the cameras were built from; zeros for cameras
        given by position and direction, as the official explicit-camera path returns
        (`position_angles` gives the angles of their positions)."""
        if self.yaw is not None and self.pitch is not None:
            return torch.stack([self.pitch, self.yaw], dim=-1)
        return torch.zeros(self.batch, 2, device=self.origin.device, dtype=self.origin.dtype)

    def position_angles(self) -> torch.Tensor:
        """[B, 2] (pitch, yaw) in radians of the camera positions: yaw = atan2(z, x),
        pitch = atan2(sqrt(x^2 + z^2), y)."""
        yaw, pitch = angles_from_position(self.origin)
        return torch.stack([pitch, yaw], dim=-1)


def check_camera_radius(radius: float) -> None:
    """A ConfigError unless the cameras' distance from the origin is a positive number (-1 put them
    behind the object, looking away from it) of at most MAX_CAMERA_RADIUS."""
    if not (is_real_number(radius) and 0 < radius <= K.MAX_CAMERA_RADIUS):  # NaN fails too
        raise ConfigError(
            f"the camera radius must be a positive number of at most {K.MAX_CAMERA_RADIUS:g}, got {radius!r}."
        )


def _numbers(value: object, name: str) -> torch.Tensor:
    """`value` as a tensor (a floating tensor as it is; numbers, lists, arrays and integer tensors as
    float32: an integer tensor failed deep in torch's norm)."""
    if isinstance(value, torch.Tensor):
        return value if value.is_floating_point() else value.to(torch.float32)
    try:
        return torch.as_tensor(value, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(f"{name} must be a tensor or numbers, got {type(value).__name__}.") from None


def sample_cameras(
    pose: PoseConfig,
    batch: int,
    generator: torch.Generator | None = None,
    *,
    yaw_draw: torch.Tensor | None = None,
    pitch_draw: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> Camera:
    """B cameras drawn from `pose` (None: the FFHQ prior), looking at the origin (see
    `sample_pose_angles`)."""
    pose = given_or_default(pose, PoseConfig, "pose")
    yaw, pitch = sample_pose_angles(
        pose, batch, generator, yaw_draw=yaw_draw, pitch_draw=pitch_draw, device=device
    )
    origin = position_from_angles(yaw, pitch, pose.radius)
    return Camera(origin=origin, forward=normalize(-origin), yaw=yaw, pitch=pitch)
