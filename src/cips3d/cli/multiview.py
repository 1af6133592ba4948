"""`cips3d multiview`: each seed at N yaws x M pitches in one grid, and the 1.44 / 1.70 mirror pair."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cips3d import constants as K
from cips3d.cli.common import (
    add_model_arguments,
    add_overwrite_argument,
    finite_float,
    fitted_styles,
    given,
    model_record,
    named,
    output_record,
    positive_int,
    refuse_earlier_outputs,
    refuse_ignored,
    styles_name,
    truncation,
)
from cips3d.cli.speed import (
    RayProgress,
    add_chunk_rows_argument,
    add_precision_argument,
    rendering_generator,
    speed_options,
)
from cips3d.config import RenderConfig
from cips3d.errors import UserError
from cips3d.inference.geometry import normals_image
from cips3d.inference.multiview import (
    MIRROR_YAWS,
    PITCH_SWEEP,
    YAW_SWEEP,
    Views,
    multiview_image,
    render_mirror_pair,
    render_multiview,
    seed_generators,
    spread_angles,
    styles_for_seeds,
)
from cips3d.inference.sample import parse_seeds
from cips3d.io.images import depth_tiles, make_grid, save_png, to_uint8
from cips3d.rendering.cameras import ANGLE_RULE, PITCH_RULE, is_camera_angle, is_pitch
from cips3d.words import counted

SEEDS = "0-3"  # the default of --seeds

EXAMPLES = """examples:
  cips3d multiview --preset tiny --seeds 0-3 --yaws 5 --pitches 3 --size 64
  cips3d multiview --checkpoint G_ema.pth --preset ffhq --seeds 7 --yaws 1.2,1.57,1.9 --flip-pair
"""
MAX_VIEWS_PER_AXIS = 64
_COUNT = re.compile(r"^\s*[-+]?\d+\s*$")  # any integer is a count; one angle is written 2.0


@dataclass(frozen=True)
class MultiviewSettings:
    seeds: list[int]
    yaws: list[float]
    pitches: list[float]
    render: RenderConfig


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "multiview",
        help="render each seed from a grid of cameras",
        description="Render each seed at N yaws x M pitches into one grid image (rows = pitches, "
        "columns = yaws). The view at (yaw, pitch) is the image `cips3d sample` writes for that pose.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(p)
    g = p.add_argument_group("what to render")
    g.add_argument("--seeds", default=SEEDS, help=f"seeds as a list and/or ranges (default {SEEDS})")
    g.add_argument(
        "--styles", help="instead of seeds: the styles.safetensors of `cips3d invert` (grid <name>.png)"
    )
    g.add_argument(
        "--yaws",
        default="5",
        help="a number of yaws spread over the official sweep 1 .. pi-1, or a list of radians such as "
        "1.2,1.57 (a single integer is a count; default 5)",
    )
    g.add_argument(
        "--pitches",
        default="1",
        help="a number of pitches spread over pi/2 +- 0.31, or a list of radians (default 1: level)",
    )
    g.add_argument(
        "--flip-pair",
        action="store_true",
        help=f"also write seedNNNN_flip.png: yaw {MIRROR_YAWS[0]} | {MIRROR_YAWS[1]} (mirror check)",
    )
    g.add_argument("--size", type=int, default=128, help="image height and width in pixels (default 128)")
    g.add_argument("--fov", type=finite_float, default=K.FOV_DEGREES, help="field of view in degrees")
    g.add_argument("--psi", type=truncation, default=1.0, help="truncation in [0, 1] (1: none)")
    g.add_argument("--deterministic", action="store_true", help="no jitter or random importance samples")
    o = p.add_argument_group("how and where")
    o.add_argument("--aux", action="store_true", help="also write the grid of aux NeRF images")
    o.add_argument("--depth", action="store_true", help="also write the grid of depth maps (near bright)")
    o.add_argument("--normals", action="store_true", help="also write the grid of normals from the depth")
    o.add_argument("--batch-size", type=positive_int, default=8, help="views rendered together (default 8)")
    add_chunk_rows_argument(o)
    add_precision_argument(p.add_argument_group("speed (as sample's: a view stays the image sample writes)"))
    o.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    o.add_argument("--outdir", default="outputs/multiview", help="output folder (default outputs/multiview)")
    add_overwrite_argument(o)
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def parse_angles(text: str, sweep: tuple[float, float], option: str) -> list[float]:
    """'5' -> 5 angles spread over `sweep`; '1.2,1.57' -> those radians. UserError otherwise."""
    if _COUNT.match(text):
        count = int(text)
        if not 1 <= count <= MAX_VIEWS_PER_AXIS:
            raise UserError(f"{option} must ask for 1 to {MAX_VIEWS_PER_AXIS} views, got {count}.")
        return spread_angles(count, *sweep)
    try:
        values = [finite_float(x) for x in text.split(",")]  # an empty item is a mistake, not skipped
    except argparse.ArgumentTypeError:
        raise UserError(f"{option} must be a count or radians separated by commas, got {text!r}.") from None
    if not 1 <= len(values) <= MAX_VIEWS_PER_AXIS:
        raise UserError(f"{option} must list 1 to {MAX_VIEWS_PER_AXIS} angles, got {len(values)}.")
    if not all(map(is_camera_angle, values)):
        raise UserError(f"{option} takes {ANGLE_RULE}, got {text!r}.")
    return values


def _settings(args: argparse.Namespace) -> MultiviewSettings:
    """Check every option before a model is loaded."""
    seeds = parse_seeds(args.seeds)
    if args.styles:
        refuse_ignored({"--seeds": given(args, "seeds")}, "with --styles (the fitted styles replace them)")
    yaws = parse_angles(args.yaws, YAW_SWEEP, "--yaws")
    pitches = parse_angles(args.pitches, PITCH_SWEEP, "--pitches")
    if not all(map(is_pitch, pitches)):
        raise UserError(f"--pitches takes pitches {PITCH_RULE}, got {args.pitches!r}.")
    render = RenderConfig(img_size=args.size, fov=args.fov, deterministic=args.deterministic,
                          chunk_rows=args.chunk_rows, **speed_options(args))  # fmt: skip
    return MultiviewSettings(seeds, yaws, pitches, render)


def run(args: argparse.Namespace) -> int:
    s = _settings(args)
    stems = [styles_name(args.styles)] if args.styles else [f"seed{seed:04d}" for seed in s.seeds]
    asked = {"_aux.png": args.aux, "_depth.png": args.depth, "_normals.png": args.normals,
             "_flip.png": args.flip_pair}  # fmt: skip
    writes = named(stems, [".png"] + [ending for ending, on in asked.items() if on])
    refuse_earlier_outputs(args.outdir, writes, args.overwrite, also=named(stems, asked))
    device, G = rendering_generator(args)
    angles = {"psi": args.psi, "yaws": s.yaws, "pitches": s.pitches}
    record = output_record("multiview", args, model_record(args), s.render, device) | angles
    outdir = Path(args.outdir)
    views = len(s.yaws) * len(s.pitches) + (len(MIRROR_YAWS) if args.flip_pair else 0)
    subjects = _subjects(G, s, args)
    bar = tqdm(total=len(subjects) * views, unit="view", desc="multiview", disable=args.quiet,
               bar_format=RayProgress.BAR_FORMAT)  # fmt: skip
    # The bar moves with each chunk of rays, not each subject (15 views at 256 px take a minute on a CPU).
    progress = RayProgress(bar, s.render.num_rays)
    for name, styles, seed in subjects:
        n = len(s.yaws) * len(s.pitches)
        out = render_multiview(
            G,
            styles,
            s.yaws,
            s.pitches,
            s.render,
            generators=seed_generators(G, seed, n),
            batch_size=args.batch_size,
            on_rays=progress,
        )
        about = record | ({"styles": str(Path(args.styles).resolve())} if args.styles else {"seed": seed})
        save_png(multiview_image(to_uint8(out.img), len(s.yaws)), outdir / f"{name}.png",
                 about | {"output": "views"})  # fmt: skip
        for suffix, tiles in _extra_grids(out, s.render, args).items():
            save_png(multiview_image(tiles, len(s.yaws)), outdir / f"{name}_{suffix}.png",
                     about | {"output": f"views ({suffix})"})  # fmt: skip
        if args.flip_pair:
            pair = render_mirror_pair(
                G, styles, s.render, generators=seed_generators(G, seed, 2), on_rays=progress
            )
            mirrored = about | {"output": "mirror pair", "yaws": list(MIRROR_YAWS), "pitches": [K.PITCH_MEAN]}
            save_png(make_grid(to_uint8(pair.img), ncols=2), outdir / f"{name}_flip.png", mirrored)
    bar.close()
    shape = f"{counted(len(s.pitches), 'pitch', 'pitches')} x {counted(len(s.yaws), 'yaw')}"
    print(f"wrote {counted(len(subjects), 'grid')} of {shape} to {outdir}/")
    return 0


def _extra_grids(out: Views, render: RenderConfig, args: argparse.Namespace) -> dict[str, np.ndarray]:
    """The tiles [V, H, W, 3] of the grids asked for besides the image: aux, depth, normals."""
    grids = {}
    if args.aux:
        grids["aux"] = to_uint8(out.aux_img)
    if args.depth:
        grids["depth"] = depth_tiles(out.depth, render.ray_start, render.ray_end)
    if args.normals:
        grids["normals"] = normals_image(out.depth, render.fov)
    return grids


def _subjects(G, s: MultiviewSettings, args: argparse.Namespace) -> list[tuple[str, dict, int]]:
    """(file name, styles [1, D] by layer, seed of the sampler's draws) of each grid to render: the
    seeds', or the fitted styles of --styles (drawn from seed 0 when the sampling is stochastic)."""
    if args.styles:
        fitted = fitted_styles(args, G).styles
        return [(styles_name(args.styles), G.truncate(fitted, args.psi), 0)]
    return [(f"seed{seed:04d}", styles_for_seeds(G, [seed], args.psi), seed) for seed in s.seeds]
