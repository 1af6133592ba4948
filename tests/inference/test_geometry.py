"""Density grids, marching-cubes meshes, mesh files and normals, checked against analytic spheres."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from cips3d.config import RenderConfig
from cips3d.errors import ConfigError
from cips3d.inference.geometry import (
    MAX_CHUNK,
    DensityGrid,
    Mesh,
    check_grid_args,
    density_grid,
    extract_mesh,
    normals_from_depth,
    normals_to_rgb,
    resolve_level,
    write_mesh,
    write_obj,
    write_ply,
)
from cips3d.inference.multiview import styles_for_seeds
from cips3d.io.images import to_uint8
from cips3d.rendering.cameras import Camera
from cips3d.rendering.compositing import surface_depth
from cips3d.rendering.rays import camera_ray_directions
from cips3d.rendering.volume import RenderDraws, render_rays

RADIUS, SLOPE, LEVEL = 0.08, 1000.0, 10.0  # relu(1000 (0.08 - r)) = 10 on the sphere r = 0.07
SURFACE = RADIUS - LEVEL / SLOPE


def sphere_field(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Density falling linearly through the sphere; the feature is the position scaled to [-1, 1]."""
    r = points.norm(dim=-1, keepdim=True)
    return (points / RADIUS).clamp(-1, 1), SLOPE * (RADIUS - r)


def edge_counts(faces: np.ndarray) -> np.ndarray:
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    return np.unique(edges, axis=0, return_counts=True)[1]


def face_normals(mesh: Mesh) -> np.ndarray:
    v, f = mesh.vertices, mesh.faces
    return np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])


def read_ply(path) -> dict[str, np.ndarray]:
    """A minimal PLY reader for what `write_ply` writes (binary or ascii): vertex fields and faces."""
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    binary = "format binary_little_endian 1.0" in header
    nv = int(next(h for h in header if h.startswith("element vertex")).split()[-1])
    nf = int(next(h for h in header if h.startswith("element face")).split()[-1])
    kinds = {"float": "<f4", "uchar": "u1"}
    props = [h.split() for h in header if h.startswith("property") and "list" not in h]
    dtype = np.dtype([(name, kinds[kind]) for _, kind, name in props])
    if binary:
        verts = np.frombuffer(data, dtype=dtype, count=nv, offset=end)
        face_dtype = np.dtype([("n", "u1"), ("v", "<i4", (3,))])
        faces = np.frombuffer(data, dtype=face_dtype, count=nf, offset=end + nv * dtype.itemsize)
        assert (faces["n"] == 3).all() and len(data) == end + nv * dtype.itemsize + nf * face_dtype.itemsize
        return {**{n: verts[n] for n in dtype.names}, "faces": faces["v"].astype(np.int64)}
    rows = data[end:].decode("ascii").split("\n")
    table = np.array([r.split() for r in rows[:nv]], dtype=np.float64)
    faces = np.array([r.split() for r in rows[nv : nv + nf]], dtype=np.int64)
    assert (faces[:, 0] == 3).all()
    return {**{n: table[:, i] for i, n in enumerate(dtype.names)}, "faces": faces[:, 1:]}


@pytest.fixture(scope="module")
def sphere_mesh() -> Mesh:
    return extract_mesh(sphere_field, resolution=48, level=LEVEL, color_fn=lambda f: f)


def test_sphere_mesh_has_the_right_radius_is_watertight_and_faces_outward(sphere_mesh):
    mesh, voxel = sphere_mesh, 0.24 / 47
    radius = np.linalg.norm(mesh.vertices, axis=1)
    assert len(mesh.vertices) > 1000 and np.abs(radius - SURFACE).max() < voxel
    counts = edge_counts(mesh.faces)
    assert (counts == 2).all()  # every edge shared by exactly two faces
    assert len(mesh.vertices) - len(counts) + len(mesh.faces) == 2  # Euler characteristic of a sphere
    centroids = mesh.vertices[mesh.faces].mean(axis=1)
    assert (np.einsum("ij,ij->i", face_normals(mesh), centroids) > 0).all()
    assert (np.einsum("ij,ij->i", mesh.normals, mesh.vertices) > 0.9 * radius).all()  # unit, outward
    # colours are the feature at each vertex (its position / 0.08) mapped from [-1, 1] to uint8
    expected = to_uint8(torch.from_numpy(mesh.vertices / RADIUS).T.unsqueeze(-1))[:, 0]
    assert np.abs(mesh.colors.astype(int) - expected.astype(int)).max() <= 1


def test_a_surface_cut_by_the_box_is_closed_at_the_box():
    mesh = extract_mesh(sphere_field, resolution=16, level=LEVEL, bound=0.05)  # the sphere overfills it
    assert (edge_counts(mesh.faces) == 2).all()
    assert 0.05 < np.abs(mesh.vertices).max() <= 0.05 + 0.1 / 15 + 1e-6  # closed inside the pad layer
    assert mesh.colors is None  # a plain field without color_fn has no colours


def test_density_grid_is_the_clamped_field_whatever_the_chunk(tiny_G):
    styles = styles_for_seeds(tiny_G, [3])
    small = density_grid(tiny_G, styles, resolution=10, chunk=np.int64(77))  # numpy's integers count
    whole = density_grid(tiny_G, styles, resolution=10, chunk=10**6)
    # equal up to float rounding (matmul blocking depends on the number of points per call)
    assert torch.allclose(small.sigma, whole.sigma, atol=1e-6) and small.sigma.shape == (10, 10, 10)
    assert torch.allclose(small.axis, torch.linspace(-0.12, 0.12, 10)) and small.spacing == pytest.approx(
        0.24 / 9
    )
    i, j, k = 2, 7, 5
    point = torch.stack([small.axis[i], small.axis[j], small.axis[k]]).view(1, 1, 3)
    _, raw = tiny_G.field(point, {n: styles[n] for n in tiny_G.nerf_style_names})
    assert torch.allclose(small.sigma[i, j, k], raw.relu().squeeze(), atol=1e-6)
    assert (small.sigma >= 0).all() and (small.sigma == 0).any()  # the relu clamp acted
    latents = tiny_G.sample_latents(1, torch.Generator().manual_seed(3))  # latents work like styles
    assert torch.allclose(density_grid(tiny_G, latents, resolution=10).sigma, whole.sigma, atol=1e-6)
    for wrong in (0, 7.5):
        with pytest.raises(
            ConfigError, match=f"^the chunk size must be a whole number of 1 or more, got {wrong}.$"
        ):
            density_grid(tiny_G, styles, resolution=10, chunk=wrong)


def test_generator_mesh_is_coloured_by_the_aux_head(tiny_G):
    styles = styles_for_seeds(tiny_G, [0])
    mesh = extract_mesh(tiny_G, styles, resolution=16, level=0.5, relative_level=True)
    assert (edge_counts(mesh.faces) == 2).all() and np.abs(mesh.vertices).max() < 0.12 + 0.24 / 15
    feature, _ = tiny_G.field(torch.from_numpy(mesh.vertices)[None], styles)
    expected = to_uint8(torch.tanh(tiny_G.aux_head(feature))[0].T.unsqueeze(-1))[:, 0]
    assert np.array_equal(mesh.colors, expected)


def test_levels_that_cannot_make_a_surface_are_refused():
    grid = DensityGrid(sigma=torch.linspace(0, 5, 8**3).view(8, 8, 8), axis=torch.linspace(-1, 1, 8))
    assert resolve_level(grid, 0.5, relative=True) == pytest.approx(2.5)
    with pytest.raises(ConfigError, match="never reaches"):
        resolve_level(grid, 10.0)
    with pytest.raises(ConfigError, match="above the level 1e-30 everywhere"):
        resolve_level(DensityGrid(sigma=grid.sigma + 1, axis=grid.axis), 1e-30)
    for level, relative in ((1.5, True), (0.0, False), (-1.0, False)):
        with pytest.raises(ConfigError):
            resolve_level(grid, level, relative)
    with pytest.raises(ConfigError, match="resolution"):
        density_grid(sphere_field, resolution=4)
    # a fraction given: the advice is a higher fraction (the minimum's share of the maximum), not "50%"
    dense = DensityGrid(sigma=grid.sigma + 5, axis=grid.axis)  # from 5 to 10
    with pytest.raises(ConfigError, match="give a fraction of at least 51% of the maximum or a larger bound"):
        resolve_level(dense, 0.5, relative=True)
    assert resolve_level(dense, 0.51, relative=True) == pytest.approx(5.1)  # what it advised works
    high_floor = DensityGrid(sigma=grid.sigma / 5 + 8, axis=grid.axis)  # 8 to 9: "such as 50%" fails there
    with pytest.raises(ConfigError, match="give a lower level, a fraction of the maximum such as 89%, or"):
        resolve_level(high_floor, 100.0)
    assert resolve_level(high_floor, 0.89, relative=True) == pytest.approx(0.89 * 9)  # the advice works
    nearly_even = DensityGrid(sigma=grid.sigma / 500 + 9.99, axis=grid.axis)  # 9.99 to 10: 99.9%
    with pytest.raises(ConfigError, match="give a larger bound"):  # "above 100%", which mesh refuses
        resolve_level(nearly_even, 0.5, relative=True)
    with pytest.raises(ConfigError, match="zero everywhere in the box"):
        resolve_level(DensityGrid(sigma=torch.zeros(8, 8, 8), axis=grid.axis), 0.5, relative=True)


def test_a_chunk_past_the_cap_is_refused():
    """A chunk of 10^8 points bounded nothing: 8 GB on a 256^3 grid."""
    assert density_grid(sphere_field, resolution=8, chunk=MAX_CHUNK).sigma.shape == (8, 8, 8)
    with pytest.raises(ConfigError, match="at most 4,194,304 points"):
        density_grid(sphere_field, resolution=8, chunk=MAX_CHUNK + 1)


@pytest.mark.parametrize("binary", [True, False])
def test_ply_files_round_trip(tmp_path, sphere_mesh, binary):
    path = write_ply(sphere_mesh, tmp_path / "m.ply", binary=binary)
    back = read_ply(path)
    xyz = np.stack([back["x"], back["y"], back["z"]], axis=1)
    assert np.allclose(xyz, sphere_mesh.vertices, atol=0 if binary else 1e-6)
    assert np.array_equal(back["faces"], sphere_mesh.faces)
    rgb = np.stack([back["red"], back["green"], back["blue"]], axis=1)
    assert np.array_equal(rgb.astype(np.uint8), sphere_mesh.colors)
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically


def test_obj_file_holds_vertices_colours_and_one_based_faces(tmp_path, sphere_mesh):
    write_mesh(sphere_mesh, tmp_path / "m.obj")
    lines = (tmp_path / "m.obj").read_text().splitlines()
    v = np.array([line.split()[1:] for line in lines if line.startswith("v ")], dtype=np.float64)
    f = [line.split()[1:] for line in lines if line.startswith("f ")]
    faces = np.array([[int(c.split("//")[0]) for c in row] for row in f]) - 1
    assert np.allclose(v[:, :3], sphere_mesh.vertices, atol=1e-6)
    assert np.allclose(v[:, 3:] * 255, sphere_mesh.colors, atol=0.02)
    assert np.array_equal(faces, sphere_mesh.faces)
    plain = Mesh(vertices=sphere_mesh.vertices, faces=sphere_mesh.faces)  # no normals, no colours
    text = write_obj(plain, tmp_path / "plain.obj").read_text()
    rows = [line.split() for line in text.splitlines() if line[:2] in ("v ", "f ")]
    assert all(len(r) == 4 for r in rows) and "vn " not in text
    assert np.array_equal(np.array([r[1:] for r in rows if r[0] == "f"], dtype=np.int64) - 1, faces)
    with pytest.raises(ConfigError):
        write_mesh(plain, tmp_path / "m.stl")


def analytic_sphere_depth(size: int, radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth along unit rays from (0, 0, 1) to the sphere of `radius` at the origin, and the hit mask."""
    d = camera_ray_directions(size, 12.0, dtype=torch.float64)  # camera at +z looking down -z
    # |o + t d|^2 = r^2 with o = (0, 0, 1) in world = camera (0, 0, 0) and centre (0, 0, -1) in camera
    b = -d[:, 2]
    disc = b * b - (1 - radius**2)
    t = b - disc.clamp_min(0).sqrt()
    return t.view(1, 1, size, size), (disc > 0).view(1, 1, size, size)


def analytic_normals(depth: torch.Tensor) -> torch.Tensor:
    size = depth.shape[-1]
    d = camera_ray_directions(size, 12.0, dtype=depth.dtype).view(size, size, 3).permute(2, 0, 1)
    points = depth[0] * d
    return (points - torch.tensor([0, 0, -1.0], dtype=depth.dtype).view(3, 1, 1)).unsqueeze(0)


def interior(mask: torch.Tensor, steps: int = 2) -> torch.Tensor:
    """Pixels whose neighbourhood of `steps` pixels all hit (finite differences stay on the sphere)."""
    m = mask.float()
    for _ in range(steps):
        m = -torch.nn.functional.max_pool2d(-m, 3, stride=1, padding=1)
    return m.bool()


def angle_degrees(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    cos = (torch.nn.functional.normalize(a, dim=1) * torch.nn.functional.normalize(b, dim=1)).sum(1)
    return torch.rad2deg(torch.arccos(cos.clamp(-1, 1)))


def test_normals_of_an_exact_sphere_depth_are_its_radial_directions():
    depth, hit = analytic_sphere_depth(32, 0.07)
    normals = normals_from_depth(depth, fov=12.0)
    assert normals.shape == (1, 3, 32, 32) and torch.allclose(normals.norm(dim=1), depth.new_ones(1, 32, 32))
    err = angle_degrees(normals, analytic_normals(depth))[interior(hit)[:, 0]]
    assert err.numel() > 100 and err.max() < 2.0
    centre = normals[0, :, 15:17, 15:17].mean(dim=(1, 2))
    assert centre[2] > 0.99  # the front of the sphere faces the camera (+z in camera space)
    flat = normals_from_depth(torch.ones(1, 1, 8, 8, dtype=torch.float64))  # sphere of radius 1 around us
    assert torch.allclose(flat[0, :, 3, 3], torch.tensor([0, 0, 1.0], dtype=torch.float64), atol=0.02)
    assert normals_to_rgb(torch.tensor([0, 0, 1.0]).view(3, 1, 1))[0, 0].tolist() == [128, 128, 255]


def test_normals_at_a_silhouette_stay_on_their_own_surface():
    """Central differences across the jump from a sphere to the background behind it gave the edge
    pixels normals of neither surface (14 degrees off on the sphere's side, 61 on the background's)."""
    depth, hit = analytic_sphere_depth(32, 0.07)
    scene = torch.where(hit, depth, torch.full_like(depth, 1.12))  # the far bound behind the sphere
    normals = normals_from_depth(scene, fov=12.0)
    edge = (hit & ~interior(hit, 1))[:, 0]  # sphere pixels beside the background
    ring = (~hit & ~interior(~hit, 1))[:, 0]  # background pixels beside the sphere
    assert edge.sum() > 50 and ring.sum() > 50
    assert angle_degrees(normals, analytic_normals(depth))[edge].max() < 12.0  # was 26.5
    background = normals_from_depth(torch.full_like(depth, 1.12), fov=12.0)
    assert angle_degrees(normals, background)[ring].max() < 1.0  # was 86


def test_rendered_sphere_depth_is_within_a_sample_spacing_and_gives_its_normals():
    size, radius, steps = 32, 0.07, 256
    render = RenderConfig(img_size=size, num_steps=steps, hierarchical=False, deterministic=True)

    def solid_sphere(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inside = points.norm(dim=-1, keepdim=True) < radius
        return torch.zeros_like(points[..., :1]), torch.where(inside, 1e4, -1.0)

    cam2world = Camera.from_angles(math.pi / 2, math.pi / 2).cam2world().double()
    directions = camera_ray_directions(size, render.fov, dtype=torch.float64).unsqueeze(0)
    comp = render_rays(solid_sphere, directions, cam2world, render, RenderDraws())
    depth = surface_depth(comp, render.ray_end).view(1, 1, size, size)
    expected, hit = analytic_sphere_depth(size, radius)
    spacing = (render.ray_end - render.ray_start) / (steps - 1)
    chord_ok = interior(hit, 1)  # grazing rays may pass between two samples
    error = (depth - expected)[chord_ok]
    assert chord_ok.sum() > 200 and error.abs().max() < spacing
    assert torch.allclose(depth[~hit], torch.full_like(depth[~hit], render.ray_end))
    err = angle_degrees(normals_from_depth(depth, render.fov), analytic_normals(expected))
    assert err[interior(hit)[:, 0]].mean() < 3.0 and err[interior(hit)[:, 0]].max() < 8.0


def test_normals_take_integer_depth_and_name_a_bad_fov_or_a_non_tensor():
    ints = normals_from_depth(torch.full((1, 1, 8, 8), 3, dtype=torch.long))  # a depth map in whole units
    assert ints.dtype == torch.float32 and torch.isfinite(ints).all()
    for fov in ("12", math.nan, 0.0):
        with pytest.raises(ConfigError, match="fov must be"):
            normals_from_depth(torch.ones(1, 1, 8, 8), fov=fov)
    with pytest.raises(ConfigError, match="depth must be a torch.Tensor, got ndarray"):
        normals_from_depth(np.ones((1, 1, 8, 8)))
    with pytest.raises(ConfigError, match="non-square depth map"):
        normals_from_depth(torch.ones(1, 1, 8, 6))


def test_a_mesh_of_wrong_arrays_is_named_before_a_file_is_written(tmp_path, sphere_mesh):
    v, f = sphere_mesh.vertices, sphere_mesh.faces
    with pytest.raises(
        ConfigError, match=r"mesh vertices must be a numpy array \[N, 3\] of floats, got list"
    ):
        Mesh(v.tolist(), f)
    with pytest.raises(
        ConfigError, match=r"mesh faces must be a numpy array \[N, 3\] of integers, got \[.*, 4\]"
    ):
        Mesh(v, np.zeros((2, 4), np.int64))
    with pytest.raises(ConfigError, match=f"mesh faces must index its {len(v)} vertices"):
        Mesh(v, f + len(v))
    with pytest.raises(ConfigError, match="mesh colors must have one row per vertex"):
        Mesh(v, f, colors=np.zeros((3, 3), np.uint8))
    with pytest.raises(ConfigError, match="mesh colors must be a numpy array .* of uint8"):
        Mesh(v, f, colors=np.zeros(v.shape, np.float32))
    with pytest.raises(ConfigError, match="write_mesh takes a Mesh .*, got str"):
        write_mesh("mesh", tmp_path / "a.ply")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args, message",
    [
        ((4, 0.12, 10), "the grid resolution must be an integer from 8 to 1,024 (its grid alone takes"),
        ((1500, 0.12, 10), "resolution^3 x 4 bytes), got 1500."),  # 13.5 GB, then marching cubes
        ((8, float("nan"), 10), "the grid bound must be positive and at most 1e+06, got nan."),
        ((8, 0.12, MAX_CHUNK + 1), f"the chunk size must be at most {MAX_CHUNK:,} points"),
    ],
)
def test_an_impossible_grid_is_refused_in_the_words_asked_for(args, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_grid_args(*args)
    flags = ("--resolution", "--bound", "--chunk")  # how `cips3d mesh` words them
    with pytest.raises(ConfigError, match="^--"):
        check_grid_args(*args, names=flags)
