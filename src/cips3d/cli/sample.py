"""`cips3d sample`: one PNG per seed (optionally the aux NeRF view, depth and normals), plus a grid.

With `--appearance-seeds` the INR styles (all, or the `--mix-layers`) come from other seeds: style mixing.
"""

from __future__ import annotations

import argparse
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cips3d import constants as K
from cips3d.cli.common import (
    add_model_arguments,
    add_overwrite_argument,
    angle,
    comma_items,
    finite_float,
    given,
    model_record,
    named,
    num_steps,
    output_record,
    pitch_angle,
    positive_int,
    refuse_earlier_outputs,
    refuse_ignored,
    truncation,
)
from cips3d.cli.speed import (
    RayProgress,
    add_chunk_rows_argument,
    add_precision_argument,
    rendering_generator,
    speed_options,
)
from cips3d.config import PoseConfig, RenderConfig
from cips3d.errors import UserError
from cips3d.inference.geometry import normals_image
from cips3d.inference.multiview import resolve_inr_layers, sample_mixed_seeds
from cips3d.inference.sample import SampleBatch, parse_seeds, sample_seeds
from cips3d.io.images import colorize_depth, grid_tiles, make_grid, save_npy, save_png, to_uint8
from cips3d.models.generator3d import Generator3D
from cips3d.words import counted

EXAMPLES = """examples:
  cips3d sample --preset tiny --seeds 0-7 --size 64 --outdir outputs/tiny
  cips3d sample --checkpoint G_ema.pth --preset ffhq --seeds 0-15 --size 256 --yaw 1.72 --psi 0.7
  cips3d sample --checkpoint runs/ffhq-converted --seeds 3,5,8 --deterministic --aux --depth --normals
  cips3d sample --preset tiny --seeds 0-3 --appearance-seeds 9             # shapes 0-3, look of seed 9
  cips3d sample --preset tiny --seeds 0-3 --appearance-seeds 9 --mix-layers 512,1024
"""


@dataclass(frozen=True)
class SampleSettings:
    seeds: list[int]
    render: RenderConfig
    pose: PoseConfig
    appearance_seeds: list[int] | None
    mix_layers: list[str] | None


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "sample",
        help="render one image per seed",
        description="Render one image per seed from a checkpoint or a preset. Seed s always gives the "
        "same image, whatever the batch size (in float32; with --precision bf16 a few pixels can differ by "
        "one level, as bfloat16 products round differently at other batch sizes).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(p)
    g = p.add_argument_group("what to render")
    g.add_argument("--seeds", default="0-7", help="seeds as a list and/or ranges, e.g. 0-15,42 (default 0-7)")
    g.add_argument("--size", type=int, default=128, help="image height and width in pixels (default 128)")
    g.add_argument("--yaw", type=angle, default=K.YAW_MEAN, help="camera yaw in radians (pi/2: front)")
    g.add_argument("--pitch", type=pitch_angle, default=K.PITCH_MEAN,
                   help="camera pitch in radians, 0 to pi (pi/2: level)")  # fmt: skip
    g.add_argument(
        "--random-pose", action="store_true", help="draw each camera from the FFHQ pose prior instead"
    )
    g.add_argument(
        "--fov", type=finite_float, default=K.FOV_DEGREES, help="field of view in degrees (default 12)"
    )
    g.add_argument("--psi", type=truncation, default=1.0, help="truncation in [0, 1] (1: none)")
    g.add_argument(
        "--num-steps", type=num_steps, default=K.NUM_STEPS, help="coarse samples per ray (default 12)"
    )
    g.add_argument("--deterministic", action="store_true", help="no jitter or random importance samples")
    add_precision_argument(g)
    m = p.add_argument_group("style mixing")
    m.add_argument(
        "--appearance-seeds",
        help="take the INR styles (appearance) from these seeds: one per --seeds entry, or one for all; "
        "geometry, camera and render noise stay those of --seeds",
    )
    m.add_argument(
        "--mix-layers",
        help="with --appearance-seeds, take only these INR layers: block names (4,8,...,1024) or style "
        "names (inr_w512_0)",
    )
    o = p.add_argument_group("how and where")
    o.add_argument("--batch-size", type=positive_int, default=4, help="images rendered together (default 4)")
    add_chunk_rows_argument(o)
    o.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    o.add_argument("--outdir", default="outputs/sample", help="output folder (default outputs/sample)")
    add_overwrite_argument(o)
    o.add_argument("--aux", action="store_true", help="also write the aux NeRF image of each seed")
    o.add_argument("--depth", action="store_true", help="also write each depth map (PNG and .npy)")
    o.add_argument(
        "--normals", action="store_true", help="also write camera-space normals from depth, as (n + 1) / 2"
    )
    o.add_argument("--no-grid", action="store_true", help="do not write grid.png")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


SAMPLE_ENDINGS = (".png", "_aux.png", "_depth.png", "_depth.npy", "_normals.png")  # per seed, with every flag
GRID_ENDINGS = (".png", "_aux.png", "_depth.png", "_normals.png")


def _output_names(args: argparse.Namespace, seeds: list[int]) -> tuple[list[str], list[str]]:
    """(the files this run writes, those it writes on other flags), for `refuse_earlier_outputs`."""
    asked = {"_aux.png": args.aux, "_depth.png": args.depth, "_normals.png": args.normals}
    endings = [".png"] + [ending for ending, on in asked.items() if on]
    stems = [f"seed{seed:04d}" for seed in seeds]
    writes = named(stems, endings + (["_depth.npy"] if args.depth else []))
    grids = [] if args.no_grid else ["grid"]  # the grid's names are no seed's: another run's grid stays
    writes += named(grids, endings)
    return writes, named(stems, SAMPLE_ENDINGS) + named(grids, GRID_ENDINGS)


def _mixing(args: argparse.Namespace, seeds: list[int]) -> tuple[list[int] | None, list[str] | None]:
    """The appearance seeds and INR layers of style mixing (None, None without it)."""
    if args.appearance_seeds is None:
        if args.mix_layers is not None:
            raise UserError("--mix-layers needs --appearance-seeds (the seeds the layers come from).")
        return None, None
    try:
        partners = parse_seeds(args.appearance_seeds, unique=False)  # pairs: 5,5,6 gives two seeds one look
    except ValueError as err:
        raise UserError(f"--appearance-seeds: {err}") from None
    if len(partners) not in (1, len(seeds)):
        raise UserError(
            f"--appearance-seeds must give one seed or one per seed ({len(seeds)}), got {len(partners)}."
        )
    if args.mix_layers is None:
        return partners, None
    return partners, resolve_inr_layers(comma_items(args.mix_layers, "--mix-layers"))


def _settings(args: argparse.Namespace) -> SampleSettings:
    seeds = parse_seeds(args.seeds)
    appearance, layers = _mixing(args, seeds)
    render = RenderConfig(
        img_size=args.size,
        fov=args.fov,
        num_steps=args.num_steps,
        deterministic=args.deterministic,
        chunk_rows=args.chunk_rows,
        **speed_options(args),
    )
    if args.random_pose:
        refuse_ignored({"--yaw": given(args, "yaw"), "--pitch": given(args, "pitch")},
                       "with --random-pose (it draws every camera from the pose prior)")  # fmt: skip
    pose = PoseConfig() if args.random_pose else PoseConfig.fixed(args.yaw, args.pitch)
    return SampleSettings(seeds, render, pose, appearance, layers)


def _batches(G: Generator3D, s: SampleSettings, args: argparse.Namespace, bar: tqdm) -> Iterator[SampleBatch]:
    """The renders, the bar moved by each chunk of rays (in images: an ffhq batch at 256 px sat at 0 for
    minutes when it moved per batch)."""
    options = dict(render=s.render, pose=s.pose, psi=args.psi, batch_size=args.batch_size,
                   on_rays=RayProgress(bar, s.render.num_rays))  # fmt: skip
    if s.appearance_seeds is None:
        return sample_seeds(G, s.seeds, **options)
    return sample_mixed_seeds(G, s.seeds, s.appearance_seeds, inr_layers=s.mix_layers, **options)


def _record(args: argparse.Namespace, s: SampleSettings, device: object) -> dict[str, object]:
    """What every PNG of this run records (`output_record`, with the truncation and the pose)."""
    pose = "random, drawn with the seed" if args.random_pose else {"yaw": args.yaw, "pitch": args.pitch}
    # The batch size too: in bf16 a few pixels differ by one level between batch sizes.
    settings = {"psi": args.psi, "pose": pose, "batch_size": args.batch_size}
    return output_record("sample", args, model_record(args), s.render, device) | settings


def _image_record(record: dict, s: SampleSettings, seed: int, output: str) -> dict[str, object]:
    """`record` for one seed's `output` (image, aux image, depth or normals)."""
    mine = {**record, "seed": seed, "output": output}
    if s.appearance_seeds is not None:
        mine |= {"appearance_seed": _appearance_seed(s, seed), "mix_layers": s.mix_layers or "all"}
    return mine


def _appearance_seed(s: SampleSettings, seed: int) -> int:
    """The seed whose INR styles `seed` is rendered with: one partner for every seed, or one each."""
    return s.appearance_seeds[0 if len(s.appearance_seeds) == 1 else s.seeds.index(seed)]


def run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    seeds, render = settings.seeds, settings.render
    writes, also = _output_names(args, seeds)
    refuse_earlier_outputs(args.outdir, writes, args.overwrite, also=also)
    device, G = rendering_generator(args)
    record = _record(args, settings, device)
    outdir = Path(args.outdir)
    tiles: dict[str, list[np.ndarray]] = {"img": [], "aux": [], "depth": [], "normals": []}
    in_grid = 0 if args.no_grid else grid_tiles(len(seeds), render.img_size)
    bar = tqdm(total=len(seeds), unit="img", desc="sample", disable=args.quiet,
               bar_format=RayProgress.BAR_FORMAT)  # fmt: skip
    for batch in _batches(G, settings, args, bar):
        out = batch.output
        normals = normals_image(out.depth, render.fov) if args.normals else None
        imgs, auxs = to_uint8(out.img), to_uint8(out.aux_img)
        for i, seed in enumerate(batch.seeds):
            stem = outdir / f"seed{seed:04d}"
            drawn = {}
            if args.random_pose:  # the angles drawn, so that the camera can be reused (multiview, video)
                pitch, yaw = out.pitch_yaw[i].tolist()
                drawn["camera"] = {"yaw": yaw, "pitch": pitch}
            if render.precision == "bf16":  # a few bf16 pixels depend on the batch an image was in
                drawn["batch_seeds"] = batch.seeds
            about = functools.partial(_image_record, record | drawn, settings, seed)  # each file's record
            written = {"img": imgs[i]}
            save_png(imgs[i], f"{stem}.png", about("image"))
            if args.aux:
                save_png(auxs[i], f"{stem}_aux.png", about("aux image"))
                written["aux"] = auxs[i]
            if args.depth:
                written["depth"] = colorize_depth(out.depth[i], render.ray_start, render.ray_end)
                save_png(written["depth"], f"{stem}_depth.png", about("depth"))
                save_npy(out.depth[i, 0].cpu().numpy(), f"{stem}_depth.npy")
            if normals is not None:
                save_png(normals[i], f"{stem}_normals.png", about("normals"))
                written["normals"] = normals[i]
            if len(tiles["img"]) < in_grid:  # only what the grid shows is kept in memory
                for kind, tile in written.items():
                    tiles[kind].append(tile)
    bar.close()
    if in_grid:
        ncols = math.ceil(math.sqrt(in_grid))
        kinds = ("img", "aux", "depth", "normals")
        for kind in kinds:
            name = "grid.png" if kind == "img" else f"grid_{kind}.png"
            if tiles[kind]:
                shown = {**record, "seeds": seeds[:in_grid], "output": f"grid ({kind})"}
                if settings.appearance_seeds is not None:  # each tile's look, as its own PNG records it
                    looks = [_appearance_seed(settings, seed) for seed in seeds[:in_grid]]
                    shown |= {"appearance_seeds": looks, "mix_layers": settings.mix_layers or "all"}
                save_png(make_grid(np.stack(tiles[kind]), ncols), outdir / name, shown)
    print(f"wrote {counted(len(seeds), 'image')} of {render.img_size}x{render.img_size} to {outdir}/")
    if 0 < in_grid < len(seeds):
        print(f"grid.png shows the first {counted(in_grid, 'image')} (a grid of all would be too large).")
    return 0
