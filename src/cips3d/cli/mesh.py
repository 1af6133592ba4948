"""`cips3d mesh`: a marching-cubes mesh of each seed's NeRF density, with aux-head vertex colours."""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from cips3d.cli.common import (
    add_model_arguments,
    add_overwrite_argument,
    build_generator,
    comma_items,
    finite_float,
    named,
    positive_int,
    refuse_earlier_outputs,
    refuse_ignored,
    resolve_device,
    truncation,
)
from cips3d.errors import UserError
from cips3d.inference.geometry import (
    DEFAULT_BOUND,
    DEFAULT_CHUNK,
    DEFAULT_SIGMA_LEVEL,
    MAX_CHUNK,
    MESH_FORMATS,
    as_scene_field,
    check_grid_args,
    density_grid,
    mesh_from_grid,
    num_chunks,
    resolve_level,
    write_mesh,
)
from cips3d.inference.multiview import styles_for_seeds
from cips3d.inference.sample import parse_seeds
from cips3d.words import counted

EXAMPLES = """examples:
  cips3d mesh --preset tiny --seeds 0-3 --resolution 64 --level 50% --outdir outputs/meshes
  cips3d mesh --checkpoint G_ema.pth --preset ffhq --seeds 7 --resolution 256 --psi 0.7 --format ply,obj
"""


@dataclass(frozen=True)
class MeshSettings:
    seeds: list[int]
    level: float
    relative: bool
    formats: list[str]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "mesh",
        help="extract a coloured mesh per seed (marching cubes)",
        description="Sample each seed's NeRF density on a grid over the +-0.12 box and write the surface "
        "at a density level as PLY and/or OBJ, coloured by the aux head.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(p)
    g = p.add_argument_group("what to extract")
    g.add_argument("--seeds", default="0", help="seeds as a list and/or ranges, e.g. 0-3,42 (default 0)")
    g.add_argument(
        "--resolution", type=int, default=128, help="grid points per axis (default 128, 8 to 1024)"
    )
    g.add_argument(
        "--level",
        default=f"{DEFAULT_SIGMA_LEVEL:g}",
        help=f"surface density: an absolute sigma (default {DEFAULT_SIGMA_LEVEL:g}, pi-GAN's) or a "
        "percentage of each grid's maximum such as 50%%",
    )
    g.add_argument("--psi", type=truncation, default=1.0, help="truncation in [0, 1] (1: none)")
    g.add_argument(
        "--bound", type=finite_float, default=DEFAULT_BOUND, help="half side of the meshed cube (0.12)"
    )
    o = p.add_argument_group("how and where")
    o.add_argument("--format", default="ply", help="ply, obj or ply,obj (default ply)")
    o.add_argument("--ascii", action="store_true", help="write ascii PLY instead of binary")
    o.add_argument(
        "--chunk", type=positive_int, default=DEFAULT_CHUNK,
        help=f"grid points per NeRF call (bounds memory; default {DEFAULT_CHUNK:,}, at most {MAX_CHUNK:,})",
    )  # fmt: skip
    o.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    o.add_argument("--outdir", default="outputs/mesh", help="output folder (default outputs/mesh)")
    add_overwrite_argument(o)
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def parse_level(text: str) -> tuple[float, bool]:
    """'10' -> (10.0, False); '50%' -> (0.5, True). UserError for anything else."""
    body, relative = (text[:-1], True) if text.strip().endswith("%") else (text, False)
    try:
        value = float(body)
    except ValueError:
        raise UserError(
            f"--level must be a density such as 10 or a percentage such as 50%, got {text!r}."
        ) from None
    if relative and not 0 < value < 100:
        raise UserError(f"--level as a percentage must lie strictly between 0% and 100%, got {text!r}.")
    if not relative and not 0 < value < math.inf:  # NaN fails this too
        raise UserError(f"--level must be a positive finite density, got {text!r}.")
    return (value / 100, True) if relative else (value, False)


def _settings(args: argparse.Namespace) -> MeshSettings:
    """Check every option before a model is loaded."""
    seeds = parse_seeds(args.seeds)
    check_grid_args(args.resolution, args.bound, args.chunk, names=("--resolution", "--bound", "--chunk"))
    formats = [f.lower() for f in comma_items(args.format, "--format")]
    if any(f not in MESH_FORMATS for f in formats):
        raise UserError(f"--format must be ply, obj or ply,obj, got {args.format!r}.")
    level, relative = parse_level(args.level)
    if "ply" not in formats:
        refuse_ignored({"--ascii": args.ascii}, "without PLY output (OBJ is always text)")
    return MeshSettings(seeds, level, relative, list(dict.fromkeys(formats)))


def run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    stems = [f"seed{seed:04d}" for seed in settings.seeds]
    writes = named(stems, [f".{fmt}" for fmt in settings.formats])
    refuse_earlier_outputs(args.outdir, writes, args.overwrite, also=named(stems, (".ply", ".obj")))
    device = resolve_device(args.device)
    G = build_generator(args, device)
    outdir = Path(args.outdir)
    chunks = num_chunks(args.resolution, args.chunk)
    bar = tqdm(total=chunks * len(settings.seeds), unit="chunk", desc="mesh", disable=args.quiet)
    failed: list[str] = []  # a seed whose density cannot make a surface is said and skipped, not the end
    for seed in settings.seeds:
        scene = as_scene_field(G, styles_for_seeds(G, [seed]), psi=args.psi)
        grid = density_grid(
            scene,
            resolution=args.resolution,
            bound=args.bound,
            chunk=args.chunk,
            on_chunk=lambda _: bar.update(),
        )
        try:
            level = resolve_level(grid, settings.level, settings.relative)
        except UserError as err:
            if len(settings.seeds) == 1:
                raise UserError(f"seed {seed}: {err}") from None
            bar.write(f"cips3d mesh: seed {seed} skipped: {err}", file=sys.stderr)
            failed.append(str(seed))
            continue
        mesh = mesh_from_grid(grid, level, scene, args.chunk)
        for fmt in settings.formats:
            write_mesh(mesh, outdir / f"seed{seed:04d}.{fmt}", binary=not args.ascii)
        bar.set_postfix(vertices=len(mesh.vertices))
    bar.close()
    return _report(settings, len(settings.seeds) - len(failed), failed, args.resolution, outdir)


def _report(settings: MeshSettings, written: int, failed: list[str], resolution: int, outdir: Path) -> int:
    """What was written; with seeds that made no surface, a one-sentence error and exit 2 after it."""
    names = "/".join(settings.formats)
    if written:
        meshes = counted(written, f"{names} mesh", f"{names} meshes")
        print(f"wrote {meshes} ({resolution}^3 grid) to {outdir}/")
    if failed:
        seeds = counted(len(failed), "seed")
        raise UserError(f"{seeds} made no surface at this level ({', '.join(failed)}); see the lines above.")
    return 0
