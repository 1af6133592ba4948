"""The procedural dataset: analytic silhouettes and depth, determinism, the camera side file."""

from __future__ import annotations

import json
import math
import zipfile

import torch

from cips3d.data.images import ImageDataset
from cips3d.data.synth import Scenes, pixel_directions, render_scenes, sample_scenes, write_synth_dataset
from cips3d.rendering.cameras import Camera


def sphere_scene(radius: float) -> Scenes:
    """Only a sphere: the other three ellipsoids are hidden inside it."""
    centres = torch.zeros(1, 4, 3)
    radii = torch.tensor([[[radius] * 3, [0.01] * 3, [0.01] * 3, [0.01] * 3]])
    colours = torch.full((1, 4, 3), 0.5)
    return Scenes(
        centres=centres, radii=radii, colours=colours, stripe_colour=torch.full((1, 3), 0.5),
        stripe_frequency=torch.ones(1), stripe_phase=torch.zeros(1),
        spot_direction=torch.tensor([[-1.0, 0.0, 0.0]]), spot_colour=torch.full((1, 3), 0.5),
    )  # fmt: skip


def test_a_sphere_has_the_analytic_silhouette_and_depth():
    radius, size = 0.08, 41
    camera = Camera.from_angles(math.pi / 2, math.pi / 2)
    _, depth = render_scenes(sphere_scene(radius), camera, size, supersample=1)
    dirs = pixel_directions(size, 12.0).reshape(-1, 3)
    origin = torch.tensor([0.0, 0.0, 1.0])
    # A ray from the origin o along d passes the centre at distance |o x d|; it hits iff that is < r.
    miss_distance = torch.linalg.cross(origin.expand_as(dirs), dirs @ camera.cam2world()[0, :3, :3].T).norm(
        dim=-1
    )
    expected = (miss_distance < radius).reshape(size, size)
    assert torch.equal(torch.isfinite(depth[0]), expected)
    assert abs(float(depth[0, size // 2, size // 2]) - (1 - radius)) < 1e-6


def test_scenes_fit_in_the_official_box_and_are_asymmetric():
    scenes = sample_scenes(500, torch.Generator().manual_seed(0))
    extent = (scenes.centres.abs() + scenes.radii).amax(dim=(0, 1))
    assert torch.all(extent <= 0.12)
    assert torch.all(scenes.centres[:, 2, 0] > 0) and torch.all(scenes.spot_direction[:, 0] < 0)


def test_the_dataset_is_deterministic_and_records_every_camera(tmp_path):
    stats = write_synth_dataset(tmp_path / "a.zip", count=20, resolution=16, seed=3, progress=False)
    write_synth_dataset(tmp_path / "b.zip", count=20, resolution=16, seed=3, progress=False)
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    dataset = ImageDataset(tmp_path / "a.zip")
    assert len(dataset) == 20 and dataset.resolution == 16
    meta = json.loads(stats.cameras.read_text())
    assert len(meta["cameras"]) == 20 and meta["fov"] == 12.0
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        assert meta["cameras"][7]["image"] in archive.namelist()
    record = meta["cameras"][7]
    rebuilt = Camera.from_angles(record["yaw"], record["pitch"]).cam2world()[0]
    assert torch.allclose(rebuilt, torch.tensor(record["cam2world"]), atol=1e-6)
    yaws = torch.tensor([c["yaw"] for c in meta["cameras"]])
    assert abs(float(yaws.mean()) - math.pi / 2) < 0.3  # drawn around the front (std 0.3)
