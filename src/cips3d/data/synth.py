"""A procedural multi-view dataset that fits the official camera prior, rendered by our own ray caster.

Each scene is one object inside the +-0.12 box (where the CIPS-3D NeRF lives): a striped body
ellipsoid with a nose in front, an ear on its +x side only, a hat tilted to one side and a spot on
its -x side, so that a mirror-symmetry error (details that swap sides with the view) is visible.
Cameras are drawn from the FFHQ prior (radius 1, fov 12, yaw N(pi/2, 0.3), pitch N(pi/2, 0.155))
with the same look-at frame and pixel grid as the generator. Shading is Lambertian under a light
fixed in the world, so the pictures of a scene are exactly consistent across views.

Rays are intersected analytically with the ellipsoids (no marching), so 5,000 images at 32 px take
seconds; images are rendered at `supersample` x the size and box-filtered to anti-alias edges.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from cips3d import constants as K
from cips3d.config import PoseConfig, given_or_default
from cips3d.data.zip_tool import archive_name, encode_png, write_image_zip
from cips3d.errors import ConfigError
from cips3d.io.files import atomic_write
from cips3d.rendering.cameras import Camera, sample_pose_angles

BACKGROUND = 0.92  # light grey, like a studio backdrop
LIGHT_DIRECTION = (0.45, 0.65, 0.62)  # from the upper right front, fixed in the world
AMBIENT = 0.35


@dataclass(frozen=True)
class Scenes:
    """N objects; every field is a tensor with the scene index first."""

    centres: torch.Tensor
    """[N, P, 3] centres of the P = 4 ellipsoids: body, nose, ear, hat."""
    radii: torch.Tensor
    """[N, P, 3] semi-axes of the ellipsoids (axis-aligned)."""
    colours: torch.Tensor
    """[N, P, 3] base colours in [0, 1]; the body's second stripe colour is `stripe_colour`."""
    stripe_colour: torch.Tensor
    """[N, 3]"""
    stripe_frequency: torch.Tensor
    """[N] stripes per unit of height on the body (as sin(f * y + phase))."""
    stripe_phase: torch.Tensor
    """[N]"""
    spot_direction: torch.Tensor
    """[N, 3] unit direction (from the body centre) of the spot, always on the -x side."""
    spot_colour: torch.Tensor
    """[N, 3]"""

    @property
    def count(self) -> int:
        return self.centres.shape[0]

    def select(self, index: slice) -> Scenes:
        return Scenes(**{k: getattr(self, k)[index] for k in self.__dataclass_fields__})


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, *shape: int) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, *shape, generator=g)


def sample_scenes(count: int, generator: torch.Generator) -> Scenes:
    """`count` random objects (all inside the +-0.12 box)."""
    g, n = generator, count
    body = _uniform(n, 0.055, 0.08, g, 3)
    zero = torch.zeros(n)
    nose_r = _uniform(n, 0.012, 0.02, g)
    ear_r = _uniform(n, 0.018, 0.028, g)
    hat = torch.stack(
        [_uniform(n, 0.03, 0.05, g), _uniform(n, 0.012, 0.02, g), _uniform(n, 0.03, 0.05, g)], -1
    )
    centres = torch.stack(
        [
            torch.stack([zero, zero, zero], -1),
            torch.stack([zero, _uniform(n, -0.02, 0.01, g), body[:, 2] * 0.92], -1),  # nose, in front
            torch.stack([body[:, 0] * 0.95, _uniform(n, -0.01, 0.025, g), zero], -1),  # ear, +x side only
            torch.stack([_uniform(n, 0.005, 0.025, g), body[:, 1] * 0.95, zero], -1),  # hat, off centre
        ],
        dim=1,
    )
    radii = torch.stack([body, nose_r[:, None].expand(n, 3), ear_r[:, None].expand(n, 3), hat], dim=1)
    spot = torch.stack([-_uniform(n, 0.5, 0.8, g), _uniform(n, 0.0, 0.4, g), _uniform(n, 0.5, 0.8, g)], -1)
    return Scenes(
        centres=centres,
        radii=radii,
        colours=_uniform(n, 0.1, 0.95, g, 4, 3),
        stripe_colour=_uniform(n, 0.1, 0.95, g, 3),
        stripe_frequency=_uniform(n, 60.0, 140.0, g),
        stripe_phase=_uniform(n, 0.0, 6.283, g),
        spot_direction=spot / spot.norm(dim=-1, keepdim=True),
        spot_colour=_uniform(n, 0.0, 1.0, g, 3),
    )


def pixel_directions(img_size: int, fov_degrees: float, supersample: int = 1) -> torch.Tensor:
    """Unit camera-space directions [H*s, W*s, 3] on the generator's pixel grid (extreme pixel centres
    at +-1), each pixel split into s x s evenly spaced sub-rays around its centre."""
    step = 2.0 / (img_size - 1) if img_size > 1 else 2.0
    centres = torch.linspace(-1.0, 1.0, img_size)
    offsets = (torch.arange(supersample) + 0.5) / supersample - 0.5
    xs = (centres[:, None] + offsets[None, :] * step).reshape(-1)
    ys = -xs  # rows run from top (+1) to bottom (-1)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    z = torch.full_like(x, -1.0 / torch.tan(torch.deg2rad(torch.tensor(fov_degrees)) / 2).item())
    d = torch.stack([x, y, z], dim=-1)
    return d / d.norm(dim=-1, keepdim=True)


def _intersect(origins, dirs, centres, radii) -> torch.Tensor:
    """Entry distances of rays into axis-aligned ellipsoids: origins [N, 1, 3], dirs [N, R, 3],
    centres and radii [N, P, 3] -> t [N, R, P], inf on a miss (solved in unit-sphere coordinates)."""
    o = (origins[:, :, None, :] - centres[:, None]) / radii[:, None]  # [N, 1, P, 3] in unit-sphere space
    d = dirs[:, :, None, :] / radii[:, None]  # [N, R, P, 3]
    a = (d * d).sum(-1)
    b = 2 * (o * d).sum(-1)
    c = (o * o).sum(-1) - 1
    disc = b * b - 4 * a * c
    t = (-b - torch.sqrt(disc.clamp_min(0))) / (2 * a)
    return torch.where((disc > 0) & (t > 0), t, torch.full_like(t, float("inf")))


def _shade(scenes: Scenes, points, part, hit) -> torch.Tensor:
    """Colours [N, R, 3] of the hit points [N, R, 3] on ellipsoid `part` [N, R] (Lambert + textures)."""
    centre = scenes.centres.gather(1, part[..., None].expand(-1, -1, 3))
    radius = scenes.radii.gather(1, part[..., None].expand(-1, -1, 3))
    normal = (points - centre) / radius.square()
    normal = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    colour = scenes.colours.gather(1, part[..., None].expand(-1, -1, 3))
    body = part == 0
    stripes = torch.sin(scenes.stripe_frequency[:, None] * points[..., 1] + scenes.stripe_phase[:, None]) > 0
    colour = torch.where((body & stripes)[..., None], scenes.stripe_colour[:, None], colour)
    outward = (points - scenes.centres[:, :1]) / (points - scenes.centres[:, :1]).norm(dim=-1, keepdim=True)
    spot = body & ((outward * scenes.spot_direction[:, None]).sum(-1) > 0.93)
    colour = torch.where(spot[..., None], scenes.spot_colour[:, None], colour)
    light = torch.tensor(LIGHT_DIRECTION)
    light = light / light.norm()
    lit = colour * (AMBIENT + (1 - AMBIENT) * (normal * light).sum(-1, keepdim=True).clamp_min(0))
    return torch.where(hit[..., None], lit, torch.full_like(lit, BACKGROUND))


def render_scenes(
    scenes: Scenes, camera: Camera, img_size: int, fov: float = K.FOV_DEGREES, supersample: int = 2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray-cast N scenes, one camera each.

    Returns:
        (rgb [N, 3, H, W] in [0, 1], depth [N, H, W]: distance along the unit ray of the pixel-centre
        hit, inf where the ray misses). Depth uses the centre rays only (`supersample` = 1 grid).
    """
    cam2world = camera.cam2world()
    rgb = _cast(scenes, cam2world, pixel_directions(img_size, fov, supersample))
    s = supersample
    rgb = rgb.reshape(scenes.count, img_size, s, img_size, s, 3).mean(dim=(2, 4)).permute(0, 3, 1, 2)
    return rgb.clamp(0, 1), _depth(scenes, cam2world, pixel_directions(img_size, fov, 1))


def _world_rays(cam2world, directions) -> tuple[torch.Tensor, torch.Tensor]:
    dirs = directions.reshape(1, -1, 3) @ cam2world[:, :3, :3].transpose(1, 2)
    return cam2world[:, None, :3, 3], dirs


def _cast(scenes: Scenes, cam2world, directions) -> torch.Tensor:
    origins, dirs = _world_rays(cam2world, directions)
    t = _intersect(origins, dirs, scenes.centres, scenes.radii)
    nearest, part = t.min(dim=-1)
    hit = torch.isfinite(nearest)
    points = origins + dirs * torch.where(hit, nearest, torch.zeros_like(nearest))[..., None]
    return _shade(scenes, points, part, hit)


def _depth(scenes: Scenes, cam2world, directions) -> torch.Tensor:
    origins, dirs = _world_rays(cam2world, directions)
    t = _intersect(origins, dirs, scenes.centres, scenes.radii)
    size = directions.shape[0]
    return t.min(dim=-1).values.reshape(scenes.count, size, size)


def sample_cameras_for(count: int, generator: torch.Generator, pose: PoseConfig | None = None) -> Camera:
    """`count` cameras from the FFHQ prior (or `pose`), looking at the origin."""
    yaw, pitch = sample_pose_angles(given_or_default(pose, PoseConfig, "pose"), count, generator)
    return Camera.from_angles(yaw, pitch)


@dataclass(frozen=True)
class SynthStats:
    dest: Path
    cameras: Path
    count: int
    resolution: int


def cameras_path(dest: str | os.PathLike) -> Path:
    """The side file with the true camera of every image: `<name>.cameras.json` beside the zip."""
    dest = Path(dest)
    return dest.with_name(dest.stem + ".cameras.json")


def write_synth_dataset(
    dest: str | os.PathLike,
    count: int = 5000,
    resolution: int = 32,
    seed: int = 0,
    supersample: int = 2,
    batch: int = 256,
    progress: bool = True,
) -> SynthStats:
    """Render `count` scenes (one view each) into a dataset zip, deterministically from `seed`, and
    write their cameras (yaw, pitch, cam2world) to the side file. Both files appear only once complete."""
    if count < 1 or resolution < 2:
        raise ConfigError(f"need at least 1 image of at least 2 px, got {count} of {resolution} px.")
    generator = torch.Generator().manual_seed(seed)
    records: list[dict] = []
    bar = tqdm(total=count, unit="img", desc="synth", disable=not progress)

    def pngs() -> Iterator[bytes]:
        for start in range(0, count, batch):
            n = min(batch, count - start)
            scenes, camera = sample_scenes(n, generator), sample_cameras_for(n, generator)
            rgb, _ = render_scenes(scenes, camera, resolution, supersample=supersample)
            pixels = (rgb.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
            matrices = camera.cam2world()
            for i in range(n):
                records.append(
                    {"image": archive_name(start + i), "yaw": float(camera.yaw[i]),
                     "pitch": float(camera.pitch[i]), "cam2world": matrices[i].tolist()}
                )  # fmt: skip
                yield encode_png(pixels[i])
            bar.update(n)

    written = write_image_zip(dest, pngs())
    bar.close()
    meta = {"fov": K.FOV_DEGREES, "radius": 1.0, "seed": seed, "resolution": resolution, "cameras": records}
    side = atomic_write(cameras_path(dest), lambda p: Path(p).write_text(json.dumps(meta) + "\n"))
    return SynthStats(dest=Path(dest), cameras=side, count=written, resolution=resolution)
