"""Geometry of a NeRF field: density grids, marching-cubes meshes, PLY/OBJ files, normals from depth.

The field is either a `Generator3D` with the styles (or latents) of one object, or any plain
`field_fn(points [1, N, 3]) -> (feature [1, N, C], raw sigma [1, N, 1])`, the renderer's field
signature. Coordinates are world units: the official box warp maps the +-0.12 box to the SIREN's
+-1 (spec 1.4), so objects live inside it.

    mesh = extract_mesh(G, G.mapping(z_nerf, z_inr), resolution=128)
    write_mesh(mesh, "seed0001.ply")
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from cips3d import constants as K
from cips3d.config import finite_number, is_real_number, is_whole_number, whole_count
from cips3d.errors import ConfigError
from cips3d.io.files import atomic_write, path_of
from cips3d.io.images import to_uint8
from cips3d.models.generator3d import Generator3D
from cips3d.models.inputs import require_tensor
from cips3d.rendering.rays import camera_ray_directions
from cips3d.rendering.volume import FieldFn

ColorFn = Callable[[torch.Tensor], torch.Tensor]
"""features [..., C] -> rgb [..., 3] in [-1, 1]."""
StylesOrLatents = Mapping[str, torch.Tensor] | tuple[torch.Tensor, torch.Tensor]
"""Styles by layer name, each [1, D], or a latent pair (z_nerf [1, 256], z_inr [1, 512])."""

DEFAULT_BOUND = K.BOX_WARP_SIDE / 2  # the +-0.12 box the SIREN sees as +-1
DEFAULT_SIGMA_LEVEL = 10.0  # pi-GAN's extract_shapes threshold on the clamped density (same renderer)
DEFAULT_CHUNK = 65_536  # points per field call: a few MB of activations for the official NeRF
MAX_BOUND = 1e6  # far past the scene (the cameras are 1 from its centre), well inside float32
MIN_RESOLUTION = 8  # below this a grid cannot hold a surface worth meshing
MAX_RESOLUTION = 1024  # 4 GB of float32 densities, and marching cubes takes several times that; the
# next power of two needs 34 GB and more than a day of field evaluations on a CPU
# Points per field call at most: about 480 bytes each on a CPU (points, indices, the field's outputs),
# so 2 GB; a chunk of 10^8 (which bounded nothing) peaked at 8 GB on a 256^3 grid and was no faster.
MAX_CHUNK = 2**22


@dataclass(frozen=True)
class SceneField:
    """One object's field: points -> (feature, raw sigma), and optionally feature -> rgb."""

    field_fn: FieldFn
    color_fn: ColorFn | None
    device: torch.device
    dtype: torch.dtype


@dataclass(frozen=True)
class DensityGrid:
    """Density sampled on a regular grid over the cube [-bound, bound]^3."""

    sigma: torch.Tensor
    """[R, R, R] clamped density relu(sigma); sigma[i, j, k] is at (x, y, z) = (axis[i], axis[j], axis[k])."""
    axis: torch.Tensor
    """[R] grid coordinates in world units, the same on x, y and z (both ends included)."""

    @property
    def resolution(self) -> int:
        return self.axis.numel()

    @property
    def spacing(self) -> float:
        """Distance between neighbouring grid points, world units."""
        return float(self.axis[1] - self.axis[0])


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh in world units, faces counter-clockwise seen from outside."""

    vertices: np.ndarray
    """[V, 3] float32 positions."""
    faces: np.ndarray
    """[F, 3] int64 vertex indices; the right-hand normal of (v0, v1, v2) points outward."""
    normals: np.ndarray | None = None
    """[V, 3] float32 outward unit normals (from the density gradient), or None."""
    colors: np.ndarray | None = None
    """[V, 3] uint8 RGB vertex colours, or None."""

    def __post_init__(self) -> None:
        """A `ConfigError` naming the first array of the wrong shape or kind (a mesh built by hand wrote
        a corrupt file, or failed inside numpy with an AttributeError)."""
        count = _rows_of_three(self.vertices, "vertices", "f")
        _rows_of_three(self.faces, "faces", "iu")
        if self.faces.size and not (self.faces.min() >= 0 and self.faces.max() < count):
            raise ConfigError(f"mesh faces must index its {count} vertices (0 to {count - 1}).")
        for name, kinds in (("normals", "f"), ("colors", "u")):
            value = getattr(self, name)
            if value is not None and _rows_of_three(value, name, kinds) != count:
                raise ConfigError(f"mesh {name} must have one row per vertex ({count}), got {len(value)}.")
        if self.colors is not None and self.colors.dtype != np.uint8:
            raise ConfigError(f"mesh colors must be uint8, got {self.colors.dtype}.")


def as_scene_field(
    source: Generator3D | FieldFn,
    styles: StylesOrLatents | None = None,
    *,
    psi: float = 1.0,
    color_fn: ColorFn | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> SceneField:
    """Wrap a generator (with one object's styles or latents) or a plain field function.

    For a generator, colours default to the aux head, tanh(aux_head(feature)), and `psi` truncates
    the styles; device and dtype follow the model. For a plain field, `styles` must be None and
    `device`/`dtype` say where the grid points are made.
    """
    if not isinstance(source, Generator3D):
        if styles is not None:
            raise ValueError("a plain field function takes no styles.")
        return SceneField(source, color_fn, torch.device(device), dtype)
    G = source
    if styles is None:
        raise ValueError("a generator needs the styles (or latents) of the object to mesh.")
    if isinstance(styles, (tuple, list)) and len(styles) == 2:  # latents, in any dtype as styles are
        z_nerf, z_inr = (require_tensor(z, name) for z, name in zip(styles, ("z_nerf", "z_inr"), strict=True))
        styles = G.mapping(z_nerf.to(G.device, G.dtype), z_inr.to(G.device, G.dtype))
    elif isinstance(styles, Mapping):  # moved first: a styles file's CPU tensors for a GPU model
        styles = {k: v.to(G.device, G.dtype) if isinstance(v, torch.Tensor) else v for k, v in styles.items()}
    styles = G.truncate(styles, psi)
    nerf_styles = {name: styles[name] for name in G.nerf_style_names}  # on the model's device and dtype
    if any(s.shape[0] != 1 for s in nerf_styles.values()):
        raise ValueError("geometry is extracted one object at a time: give styles of batch size 1.")

    with torch.no_grad():  # geometry is extracted without gradients; fold the styles in once
        folded = G.field.modulate(nerf_styles)

    def field_fn(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return G.field(points, folded)

    def aux_colors(feature: torch.Tensor) -> torch.Tensor:
        return torch.tanh(G.aux_head(feature))

    return SceneField(field_fn, color_fn or aux_colors, G.device, G.dtype)


def num_chunks(resolution: int, chunk: int = DEFAULT_CHUNK) -> int:
    """How many field calls `density_grid` makes (for progress bars)."""
    return math.ceil(resolution**3 / chunk)


GRID_ARG_NAMES = ("the grid resolution", "the grid bound", "the chunk size")


def check_grid_args(
    resolution: int, bound: float, chunk: int, names: tuple[str, str, str] = GRID_ARG_NAMES
) -> None:
    """A `ConfigError` for an impossible grid; `names` words resolution, bound and chunk in it (the
    CLI passes its flags, to refuse them before a model loads)."""
    resolution_name, bound_name, chunk_name = names
    if isinstance(bound, torch.Tensor) and bound.numel() == 1:
        bound = bound.item()
    if not is_whole_number(resolution) or not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise ConfigError(f"{resolution_name} must be an integer from {MIN_RESOLUTION} to {MAX_RESOLUTION:,} "
                          f"(its grid alone takes resolution^3 x 4 bytes), got {resolution!r}.")  # fmt: skip
    if not (is_real_number(bound) and 0 < bound <= MAX_BOUND):  # NaN fails this too; '0.1' was a TypeError
        got = f"{bound:g}" if is_real_number(bound) else repr(bound)
        raise ConfigError(f"{bound_name} must be positive and at most {MAX_BOUND:g}, got {got}.")
    whole_count(chunk, chunk_name)
    if chunk > MAX_CHUNK:
        raise ConfigError(
            f"{chunk_name} must be at most {MAX_CHUNK:,} points (about 2 GB at once), got {chunk:,}."
        )


@torch.no_grad()
def density_grid(
    source: Generator3D | FieldFn | SceneField,
    styles: StylesOrLatents | None = None,
    *,
    resolution: int = 128,
    bound: float = DEFAULT_BOUND,
    chunk: int = DEFAULT_CHUNK,
    psi: float = 1.0,
    on_chunk: Callable[[int], None] | None = None,
) -> DensityGrid:
    """Sample relu(sigma) (the renderer's 'relu' clamp) on a resolution^3 grid over [-bound, bound]^3.

    Points are made and evaluated `chunk` at a time, so memory stays bounded at any resolution.
    `on_chunk(n)` is called after each chunk with its number of points. The grid is on the field's
    device, in its dtype.
    """
    check_grid_args(resolution, bound, chunk)
    scene = source if isinstance(source, SceneField) else as_scene_field(source, styles, psi=psi)
    axis = torch.linspace(-bound, bound, resolution, device=scene.device, dtype=scene.dtype)
    total = resolution**3
    sigma = torch.empty(total, device=scene.device, dtype=scene.dtype)
    for start in range(0, total, chunk):
        flat = torch.arange(start, min(start + chunk, total), device=scene.device)
        # flat index = (i * R + j) * R + k, matching sigma.reshape(R, R, R)[i, j, k].
        ijk = torch.stack([flat // resolution**2, (flat // resolution) % resolution, flat % resolution], -1)
        _, raw = scene.field_fn(axis[ijk].unsqueeze(0))
        sigma[start : start + flat.numel()] = F.relu(raw.reshape(-1))
        if on_chunk is not None:
            on_chunk(flat.numel())
    return DensityGrid(sigma=sigma.reshape(resolution, resolution, resolution), axis=axis)


def resolve_level(grid: DensityGrid, level: float, relative: bool = False) -> float:
    """The absolute density of the surface: `level`, or `level` times the grid's maximum.

    Raises ConfigError when the level is not positive (the padded border would not close the
    surface), when the density never reaches it (there is nothing to mesh) or when it is above it
    everywhere (the mesh would be the box).
    """
    if not bool(torch.isfinite(grid.sigma).all()):  # a half model's overflow: failed converting NaN to int
        raise ConfigError("the density holds NaN or infinite values (a model in float16 overflowing?); "
                          "mesh it in float32.")  # fmt: skip
    if isinstance(level, torch.Tensor) and level.numel() == 1:
        level = level.item()
    if not is_real_number(level):  # "50%", the CLI's form: a TypeError
        raise ConfigError(
            f"the level must be a number (a fraction of the maximum with relative=True), got {level!r}."
        )
    peak = float(grid.sigma.max())
    if relative and not 0 < level < 1:
        raise ConfigError(f"a relative level must lie strictly between 0 and 1, got {level}.")
    if peak <= 0:
        raise ConfigError("the density is zero everywhere in the box: there is no surface to mesh.")
    value = level * peak if relative else level
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"the density level must be a positive finite number, got {value}.")
    floor = float(grid.sigma.min())
    share = math.floor(100 * floor / peak) + 1  # the first whole percentage above the minimum
    # A fraction to suggest that works here: 50%, unless the minimum is already above half the maximum.
    fraction = f"a fraction of the maximum such as {max(50, share)}%, " if share < 100 else ""
    if peak <= value:
        raise ConfigError(
            f"the density never reaches the level {value:g} (its maximum is {peak:.4g}); give a lower "
            f"level, {fraction}or a larger bound."
        )
    if floor >= value:
        # A fraction given already: only a higher one (or a larger box, reaching thinner air) helps.
        if not relative:
            advice = f"give a higher level, {fraction}or a larger bound"
        elif share < 100:
            advice = f"give a fraction of at least {share}% of the maximum or a larger bound"
        else:
            advice = "give a larger bound (the density is nearly even in this box)"
        raise ConfigError(
            f"the density is above the level {value:g} everywhere in the box (its minimum is {floor:.4g}), "
            f"so the surface would be the box's walls; {advice}."
        )
    return value


def mesh_from_grid(
    grid: DensityGrid,
    level: float,
    scene: SceneField | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> Mesh:
    """Marching cubes (Lewiner, skimage) at the absolute density `level` (> 0), closed and outward.

    The grid is padded with one layer of zero density, so a surface cut by the box is closed at the
    box's faces and every mesh is watertight. With `scene` and its `color_fn`, vertices get colours
    from the field's features at their positions.
    """
    from skimage.measure import marching_cubes  # noqa: PLC0415 (a heavy import, only for meshes)

    volume = np.pad(grid.sigma.detach().float().cpu().numpy(), 1, constant_values=0.0)
    # 'descent': the object holds the values above the level, so normals point to lower density.
    verts, faces, normals, _ = marching_cubes(volume, level, gradient_direction="descent")
    h = grid.spacing
    vertices = (float(grid.axis[0]) + (verts - 1.0) * h).astype(np.float32)
    # skimage winds faces by the left-hand rule (see its gradient_direction docs): swapping two
    # corners makes the right-hand normal point outward, as mesh viewers expect.
    faces = faces[:, [0, 2, 1]].astype(np.int64)
    colors = None
    if scene is not None and scene.color_fn is not None:
        colors = vertex_colors(scene, vertices, chunk)
    return Mesh(vertices=vertices, faces=faces, normals=normals.astype(np.float32), colors=colors)


@torch.no_grad()
def vertex_colors(scene: SceneField, vertices: np.ndarray, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """uint8 [V, 3] colours color_fn(feature(vertex)), mapped from [-1, 1] to [0, 255]."""
    if scene.color_fn is None:
        raise ValueError("this field has no colour function.")
    points = torch.as_tensor(vertices, device=scene.device, dtype=scene.dtype)
    pieces = []
    for part in points.split(chunk):
        feature, _ = scene.field_fn(part.unsqueeze(0))
        pieces.append(scene.color_fn(feature)[0])
    rgb = torch.cat(pieces) if pieces else points.new_zeros(0, 3)
    return to_uint8(rgb.T.unsqueeze(-1))[:, 0]  # [3, V, 1] as an image -> [V, 1, 3] -> [V, 3]


def extract_mesh(
    source: Generator3D | FieldFn,
    styles: StylesOrLatents | None = None,
    *,
    resolution: int = 128,
    level: float = DEFAULT_SIGMA_LEVEL,
    relative_level: bool = False,
    bound: float = DEFAULT_BOUND,
    chunk: int = DEFAULT_CHUNK,
    psi: float = 1.0,
    color_fn: ColorFn | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> Mesh:
    """The iso-surface relu(sigma) = level of one object, with vertex colours.

    Args:
        source: a generator (with `styles`) or a plain field function.
        styles: the object's styles or latents, batch size 1 (generators only).
        resolution: grid points per axis (>= 8).
        level: density of the surface; with `relative_level`, a fraction in (0, 1) of the maximum.
        bound: half side of the meshed cube, world units (default the +-0.12 box).
        chunk: points per field call.
        psi: truncation of the styles (generators only; 1: none).
        color_fn: feature -> rgb in [-1, 1]; generators default to the aux head, plain fields to none.
        on_chunk: progress callback, called with the points of each grid chunk.

    Returns:
        A closed `Mesh` with outward faces and normals, in world units.
    """
    check_grid_args(resolution, bound, chunk)
    scene = as_scene_field(source, styles, psi=psi, color_fn=color_fn)
    grid = density_grid(scene, resolution=resolution, bound=bound, chunk=chunk, on_chunk=on_chunk)
    return mesh_from_grid(grid, resolve_level(grid, level, relative_level), scene, chunk)


# --- files --------------------------------------------------------------------------------------
def _rows_of_three(value: object, name: str, kinds: str) -> int:
    """The row count of `value`, a [N, 3] numpy array whose dtype kind is one of `kinds`; else a
    `ConfigError` naming the mesh's `name`."""
    wanted = {"f": "floats", "iu": "integers", "u": "uint8"}[kinds]
    if not (
        isinstance(value, np.ndarray)
        and value.ndim == 2
        and value.shape[1] == 3
        and value.dtype.kind in kinds
    ):
        shape = list(value.shape) if isinstance(value, np.ndarray) else type(value).__name__
        raise ConfigError(f"mesh {name} must be a numpy array [N, 3] of {wanted}, got {shape}.")
    return value.shape[0]


def _ply_vertex_dtype(mesh: Mesh) -> np.dtype:
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if mesh.normals is not None:
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    if mesh.colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    return np.dtype(fields)


def _ply_header(mesh: Mesh, dtype: np.dtype, binary: bool) -> str:
    kinds = {"<f4": "float", "u1": "uchar"}
    lines = [
        "ply",
        f"format {'binary_little_endian' if binary else 'ascii'} 1.0",
        "comment written by cips3d",
        f"element vertex {len(mesh.vertices)}",
    ]
    lines += [f"property {kinds[dtype[name].str.replace('|', '')]} {name}" for name in dtype.names]
    lines += [f"element face {len(mesh.faces)}", "property list uchar int vertex_indices", "end_header"]
    return "\n".join(lines) + "\n"


def write_ply(mesh: Mesh, path: str | os.PathLike, binary: bool = True) -> Path:
    """Write a PLY file (binary little-endian or ascii) with normals and colours when present."""
    dtype = _ply_vertex_dtype(mesh)
    rows = np.empty(len(mesh.vertices), dtype=dtype)
    rows["x"], rows["y"], rows["z"] = mesh.vertices.T
    if mesh.normals is not None:
        rows["nx"], rows["ny"], rows["nz"] = mesh.normals.T
    if mesh.colors is not None:
        rows["red"], rows["green"], rows["blue"] = mesh.colors.T
    faces = np.empty(len(mesh.faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
    faces["n"], faces["v"] = 3, mesh.faces

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(_ply_header(mesh, dtype, binary).encode("ascii"))
            if binary:
                f.write(rows.tobytes())
                f.write(faces.tobytes())
                return
            fmt = " ".join("%d" if dtype[n].kind == "u" else "%.7g" for n in dtype.names)
            np.savetxt(f, rows.tolist(), fmt=fmt)
            np.savetxt(f, np.column_stack([faces["n"], faces["v"]]), fmt="%d")

    return atomic_write(Path(path), write)


def write_obj(mesh: Mesh, path: str | os.PathLike) -> Path:
    """Write a Wavefront OBJ; colours as the common `v x y z r g b` extension (r, g, b in [0, 1])."""
    vertex = mesh.vertices.astype(np.float64)
    fmt = "v %.7g %.7g %.7g"
    if mesh.colors is not None:
        vertex = np.column_stack([vertex, mesh.colors / 255.0])
        fmt += " %.4f %.4f %.4f"
    faces = mesh.faces + 1  # OBJ counts vertices from 1

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="ascii") as f:
            f.write("# written by cips3d\n")
            np.savetxt(f, vertex, fmt=fmt)
            if mesh.normals is not None:
                np.savetxt(f, mesh.normals, fmt="vn %.5f %.5f %.5f")
                np.savetxt(f, np.repeat(faces, 2, axis=1), fmt="f %d//%d %d//%d %d//%d")
            else:
                np.savetxt(f, faces, fmt="f %d %d %d")

    return atomic_write(Path(path), write)


MESH_FORMATS = ("ply", "obj")


def write_mesh(mesh: Mesh, path: str | os.PathLike, binary: bool = True) -> Path:
    """Write `mesh` as PLY or OBJ, chosen by the suffix of `path`."""
    if not isinstance(mesh, Mesh):
        raise ConfigError(f"write_mesh takes a Mesh (see extract_mesh), got {type(mesh).__name__}.")
    path = path_of(path)
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix == "ply":
        return write_ply(mesh, path, binary)
    if suffix == "obj":
        return write_obj(mesh, path)
    raise ConfigError(f"mesh files must end in .ply or .obj, got {Path(path).name!r}.")


# --- normals from depth -------------------------------------------------------------------------
def normals_from_depth(
    depth: torch.Tensor, fov: float = K.FOV_DEGREES, directions: torch.Tensor | None = None
) -> torch.Tensor:
    """Camera-space unit surface normals from a depth map, by finite differences.

    Each pixel's point is P = depth * d, with d its unit ray direction (depth is the distance along
    the unit ray, as `GeneratorOutput.depth`). The normal is the cross product of the differences of P
    down the rows and along the columns (central, or at a silhouette the one-sided difference on the
    pixel's own surface: `_surface_difference`), turned to face the camera.

    Args:
        depth: [B, 1, H, W] depth along the unit rays.
        fov: field of view in degrees (square images), used when `directions` is None.
        directions: [H*W, 3] unit camera-space ray directions, row-major (default:
            `camera_ray_directions(H, fov)`).

    Returns:
        [B, 3, H, W] unit normals in camera space (+x right, +y up, +z towards the camera).
    """
    depth = require_tensor(depth, "depth")
    if not depth.is_floating_point():
        depth = depth.float()  # integer depth maps (millimetres, say) differentiate as floats
    if not 0 < finite_number(fov, "fov") < 180:
        raise ConfigError(f"fov must be in (0, 180) degrees, got {fov}.")
    if depth.ndim != 4 or depth.shape[1] != 1:
        raise ConfigError(f"depth must be [B, 1, H, W] like GeneratorOutput.depth, got {list(depth.shape)}.")
    b, _, h, w = depth.shape
    if h < 2 or w < 2:  # a difference needs two pixels: an IndexError inside
        raise ConfigError(f"normals need a depth map of at least 2x2 pixels, got {h}x{w}.")
    if directions is None:
        if h != w:
            raise ConfigError(f"give the ray directions for a non-square depth map ({h}x{w}).")
        directions = camera_ray_directions(h, fov, depth.device, depth.dtype)
    directions = require_tensor(directions, "directions")
    if directions.numel() != h * w * 3 or directions.shape[-1] != 3:  # [H*W, 3], [H, W, 3], [1, H*W, 3]
        raise ConfigError(f"directions must hold one [3] direction per pixel ([H*W, 3] = [{h * w}, 3]), got "
                          f"{list(directions.shape)}.")  # fmt: skip
    dirs = directions.to(depth).reshape(h, w, 3).permute(2, 0, 1).unsqueeze(0)  # [1, 3, H, W]
    points = depth * dirs
    along_cols = _surface_difference(points, dim=3)  # towards +x on screen
    down_rows = _surface_difference(points, dim=2)  # towards -y on screen
    normals = torch.cross(down_rows, along_cols, dim=1)
    # Finite differences across a silhouette can flip the sign; a visible surface faces the camera.
    away = (normals * points).sum(dim=1, keepdim=True) > 0
    return F.normalize(torch.where(away, -normals, normals), dim=1)


JUMP_RATIO = 2.0  # one-sided differences this far apart: a depth jump between the pixel and a neighbour


def _surface_difference(points: torch.Tensor, dim: int) -> torch.Tensor:
    """points [B, 3, H, W] -> their differences along `dim` per pixel: central (as `torch.gradient`),
    except where the two one-sided differences differ in length by more than `JUMP_RATIO` (a silhouette,
    where the depth jumps to another surface): there the shorter one, which stays on the pixel's own
    surface. Central differences across a silhouette gave edge pixels normals of neither surface."""
    step = points.diff(dim=dim)
    n = points.shape[dim]
    forward = torch.cat([step, step.narrow(dim, n - 2, 1)], dim)  # the last pixel: its backward one
    backward = torch.cat([step.narrow(dim, 0, 1), step], dim)  # the first pixel: its forward one
    f, b = forward.norm(dim=1, keepdim=True), backward.norm(dim=1, keepdim=True)
    jump = (f > JUMP_RATIO * b) | (b > JUMP_RATIO * f)
    return torch.where(jump, torch.where(f < b, forward, backward), (forward + backward) / 2)


def normals_image(depth: torch.Tensor, fov: float) -> np.ndarray:
    """[B, 1, H, W] depth rendered at field of view `fov` (degrees) -> uint8 [B, H, W, 3] normals as
    colours: what `sample --normals`, multiview's and video's normals show."""
    return normals_to_rgb(normals_from_depth(depth, fov))


def normals_to_rgb(normals: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] (or [3, H, W]) unit normals -> uint8 [(B,) H, W, 3], colour (n + 1) / 2."""
    return to_uint8(normals, (-1.0, 1.0))
