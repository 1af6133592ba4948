"""`cips3d sample`: one PNG per seed (optionally the aux NeRF view and depth), plus a grid."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cips3d import constants as K
from cips3d.cli.common import add_model_arguments, build_generator, finite_float, positive_int, resolve_device
from cips3d.config import PoseConfig, RenderConfig
from cips3d.errors import UserError
from cips3d.inference.sample import parse_seeds, sample_seeds
from cips3d.io.images import colorize_depth, make_grid, save_npy, save_png, to_uint8

EXAMPLES = """examples:
  cips3d sample --preset tiny --seeds 0-7 --size 64 --outdir outputs/tiny
  cips3d sample --checkpoint G_ema.pth --preset ffhq --seeds 0-15 --size 256 --yaw 1.72 --psi 0.7
  cips3d sample --checkpoint runs/ffhq-converted --seeds 3,5,8 --deterministic --aux --depth
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "sample",
        help="render one image per seed",
        description="Render one image per seed from a checkpoint or a preset. Seed s always gives the "
        "same image, whatever the batch size.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(p)
    g = p.add_argument_group("what to render")
    g.add_argument("--seeds", default="0-7", help="seeds as a list and/or ranges, e.g. 0-15,42 (default 0-7)")
    g.add_argument("--size", type=int, default=128, help="image height and width in pixels (default 128)")
    g.add_argument("--yaw", type=finite_float, default=K.YAW_MEAN, help="camera yaw in radians (pi/2: front)")
    g.add_argument(
        "--pitch", type=finite_float, default=K.PITCH_MEAN, help="camera pitch in radians (pi/2: level)"
    )
    g.add_argument(
        "--random-pose", action="store_true", help="draw each camera from the FFHQ pose prior instead"
    )
    g.add_argument(
        "--fov", type=finite_float, default=K.FOV_DEGREES, help="field of view in degrees (default 12)"
    )
    g.add_argument("--psi", type=finite_float, default=1.0, help="truncation in [0, 1] (1: none)")
    g.add_argument(
        "--num-steps", type=positive_int, default=K.NUM_STEPS, help="coarse samples per ray (default 12)"
    )
    g.add_argument("--deterministic", action="store_true", help="no jitter or random importance samples")
    o = p.add_argument_group("how and where")
    o.add_argument("--batch-size", type=positive_int, default=4, help="images rendered together (default 4)")
    o.add_argument(
        "--chunk-rows", type=positive_int, default=K.DEFAULT_CHUNK_ROWS, help="rows per render chunk"
    )
    o.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    o.add_argument("--outdir", default="outputs/sample", help="output folder (default outputs/sample)")
    o.add_argument("--aux", action="store_true", help="also write the aux NeRF image of each seed")
    o.add_argument("--depth", action="store_true", help="also write each depth map (PNG and .npy)")
    o.add_argument("--no-grid", action="store_true", help="do not write grid.png")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _settings(args: argparse.Namespace) -> tuple[list[int], RenderConfig, PoseConfig]:
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as err:
        raise UserError(str(err)) from None
    if not 0.0 <= args.psi <= 1.0:
        raise UserError(f"--psi must be between 0 and 1, got {args.psi}.")
    render = RenderConfig(
        img_size=args.size,
        fov=args.fov,
        num_steps=args.num_steps,
        deterministic=args.deterministic,
        chunk_rows=args.chunk_rows,
    )
    pose = PoseConfig() if args.random_pose else PoseConfig.fixed(args.yaw, args.pitch)
    return seeds, render, pose


def run(args: argparse.Namespace) -> int:
    seeds, render, pose = _settings(args)
    device = resolve_device(args.device)
    G = build_generator(args, device)
    outdir = Path(args.outdir)
    tiles: dict[str, list[np.ndarray]] = {"img": [], "aux": [], "depth": []}
    bar = tqdm(total=len(seeds), unit="img", desc="sample", disable=args.quiet)
    for batch in sample_seeds(G, seeds, render=render, pose=pose, psi=args.psi, batch_size=args.batch_size):
        out = batch.output
        imgs, auxs = to_uint8(out.img), to_uint8(out.aux_img)
        for i, seed in enumerate(batch.seeds):
            stem = outdir / f"seed{seed:04d}"
            save_png(imgs[i], f"{stem}.png")
            tiles["img"].append(imgs[i])
            if args.aux:
                save_png(auxs[i], f"{stem}_aux.png")
                tiles["aux"].append(auxs[i])
            if args.depth:
                depth_rgb = colorize_depth(out.depth[i], render.ray_start, render.ray_end)
                save_png(depth_rgb, f"{stem}_depth.png")
                save_npy(out.depth[i, 0].cpu().numpy(), f"{stem}_depth.npy")
                tiles["depth"].append(depth_rgb)
        bar.update(len(batch.seeds))
    bar.close()
    if not args.no_grid:
        ncols = math.ceil(math.sqrt(len(seeds)))
        for kind, name in (("img", "grid.png"), ("aux", "grid_aux.png"), ("depth", "grid_depth.png")):
            if tiles[kind]:
                save_png(make_grid(np.stack(tiles[kind]), ncols), outdir / name)
    print(f"wrote {len(seeds)} images of {render.img_size}x{render.img_size} to {outdir}/")
    return 0
