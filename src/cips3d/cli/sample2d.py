"""`cips3d sample2d`: images of a trained 2D CIPS run, at any resolution or extent, or foveated."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cips3d.cli.common import (
    CHECKPOINT_HELP_2D,
    VIDEO_LIMIT,
    VIDEO_SUFFIXES_WRITTEN,
    add_overwrite_argument,
    check_frame_rate,
    check_walk_length,
    finite_float,
    frame_count,
    given,
    image_side,
    int_at_least,
    loaded_path,
    named,
    note_gif_fallback,
    output_record,
    refuse_earlier_outputs,
    refuse_ignored,
    resolve_device,
    truncation,
)
from cips3d.errors import UserError
from cips3d.inference.foveated import MAX_FOVEATED_POINTS, foveated_image
from cips3d.inference.panorama import pan_frames
from cips3d.inference.sample import parse_seeds
from cips3d.inference.trajectories import MAX_FRAMES
from cips3d.inference.walk2d import walk_styles_2d
from cips3d.io.checkpoint2d import load_generator2d
from cips3d.io.images import grid_tiles, make_grid, save_png, to_uint8
from cips3d.io.video import DEFAULT_FPS, write_mp4_or_gif
from cips3d.models.generator2d import MAX_COORDINATE, MAX_ZOOM, Generator2D, check_window
from cips3d.words import counted

PAN_VIEW = 90.0  # --pan's field of view (degrees)

EXAMPLES = """examples:
  cips3d sample2d --checkpoint runs/cips2d --seeds 0-15 --outdir outputs/cips2d     # training size
  cips3d sample2d --checkpoint runs/cips2d --seeds 0-3 --size 128 --extent 1.5      # larger, and beyond
  cips3d sample2d --checkpoint churches.pt --seeds 0-7 --psi 0.7                     # truncated styles
  cips3d sample2d --checkpoint runs/cips2d --seeds 0,5,9,0 --interpolate 30          # a walk, as a video
  cips3d sample2d --checkpoint runs/cips2d --seeds 0 --size 256 --foveated 8000 --fixation 0.3,-0.2
  cips3d sample2d --checkpoint runs/pano --seeds 0-3 --turns 1.5            # a panorama run, past its seam
  cips3d sample2d --checkpoint runs/pano --seeds 0 --size 64 --pan 240 --view 90   # look around: a video
  cips3d sample2d --checkpoint runs/cips2d --seeds 4 --center=-0.5,0.25 --zoom 8   # a window, as `view` shows
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "sample2d",
        help="render images of a 2D CIPS model (any size, extrapolated, foveated, walks, panoramas)",
        description="Render a 2D CIPS model (a train2d run's G_ema, our model folder, or an official CIPS "
        "checkpoint) for some seeds: on the training grid, on a denser or wider grid (every pixel is "
        "computed from its own coordinates), or foveated (only scattered pixels rendered, the rest "
        "interpolated).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help=CHECKPOINT_HELP_2D)
    p.add_argument("--seeds", default="0-7", help="seeds as a list and/or ranges (default 0-7)")
    p.add_argument(
        "--size",
        type=image_side,
        help="image height in pixels (default: the training size); the width follows",
    )
    p.add_argument(
        "--turns", type=finite_float, default=1.0, help="panorama runs: how many times around (default 1)"
    )
    p.add_argument(
        "--psi", type=truncation, default=1.0, help="truncation in [0, 1]: 1 none, 0 the mean style"
    )
    p.add_argument(
        "--noise",
        action="store_true",
        help="add per-pixel noise at every layer, as the official sampler does (drawn from the seed)",
    )
    p.add_argument("--extent", type=finite_float, default=1.0,
                   help="half-width of the frame; 1: the training frame, more extrapolates")  # fmt: skip
    p.add_argument("--center", metavar="X,Y",
                   help="a window centred on (x, y) in frame units (the frame spans -1 to 1; a panorama's x "
                        "goes 2 per turn), as `cips3d view` shows it; write --center=X,Y when x is "
                        "negative (default 0,0)")  # fmt: skip
    p.add_argument("--zoom", type=finite_float,
                   help=f"the window zoomed in this many times (1/{MAX_ZOOM:g} to {MAX_ZOOM:g}; default 1): "
                        "its pixels are rendered, not enlarged")  # fmt: skip
    p.add_argument("--foveated", type=foveated_count, metavar="COUNT",
                   help="render only COUNT foveated pixels (3 or more), interpolated between")  # fmt: skip
    p.add_argument("--fixation", help="x,y in (-1, 1) of the foveated fixation (default 0,0)")
    p.add_argument(
        "--pan",
        type=turn_frames,
        metavar="FRAMES",
        help="panorama runs: also a video per seed turning once around, in FRAMES frames",
    )
    p.add_argument(
        "--view",
        type=finite_float,
        default=PAN_VIEW,
        help=f"--pan's field of view in degrees (default {PAN_VIEW:g})",
    )
    p.add_argument(
        "--interpolate",
        type=frame_count,
        metavar="STEPS",
        help="also a video walking from seed to seed (in the order given), STEPS frames between each two",
    )
    p.add_argument(
        "--fps",
        type=finite_float,
        default=DEFAULT_FPS,
        help=f"videos' frames per second (default {DEFAULT_FPS:g})",
    )
    p.add_argument(
        "--outdir",
        default="outputs/sample2d",
        help="folder for the images, grid.png and videos (default outputs/sample2d)",
    )
    add_overwrite_argument(p)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _point(text: str, flag: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"{flag} must be two numbers x,y, got {text!r}.") from None
    return x, y


def _frame(args: argparse.Namespace, G: Generator2D, size: int) -> tuple[torch.Tensor, bool]:
    """The coordinates of the images ([1, H, W, 2]) and whether they are exactly the training grid (then
    rendered from the stored embeddings, as G_ema renders its training images)."""
    if _window_asked(args):
        return G.window_grid(size, *_window(args)), False  # as `view`
    grid = G.frame_grid(size, args.extent, args.turns)
    training = (G.config.size, G.config.grid_width)
    return grid, tuple(grid.shape[1:3]) == training and args.extent == args.turns == 1


def _record(
    args: argparse.Namespace, size: int, fixation: tuple[float, float], device: object, panorama: bool
) -> dict:
    """What every PNG and video of this run records of how it was made (`output_record`); turns only
    for a panorama model (a flat one refuses any but one)."""
    frame = {"size": size, "psi": args.psi, "noise": args.noise}
    if _window_asked(args):
        x, y, zoom = _window(args)
        frame |= {"center": [x, y], "zoom": zoom}
    else:
        frame |= {"extent": args.extent} | ({"turns": args.turns} if panorama else {})
    if args.foveated:
        frame |= {"foveated": args.foveated, "fixation": list(fixation)}
    return output_record("sample2d", args, {"checkpoint": loaded_path(args.checkpoint)}, None, device) | frame


def _window_asked(args: argparse.Namespace) -> bool:
    return args.center is not None or args.zoom is not None


def _write_walk(
    G: Generator2D,
    seeds: list[int],
    args: argparse.Namespace,
    mean: torch.Tensor | None,
    grid: torch.Tensor | None,
    outdir: Path,
    record: dict,
) -> Path:
    """interpolation.mp4 (a GIF without an encoder): the walk through the seeds' latents."""
    frames = _walk_frames(G, seeds, args.interpolate, args.psi, mean, grid)
    total = (len(seeds) - 1) * args.interpolate + 1
    bar = tqdm(frames, total=total, unit="frame", desc="interpolate", disable=args.quiet)
    return write_mp4_or_gif(bar, outdir / "interpolation", args.fps, record)


@torch.no_grad()
def _walk_frames(
    G: Generator2D,
    seeds: list[int],
    steps: int,
    psi: float,
    mean: torch.Tensor | None,
    grid: torch.Tensor | None,
) -> Iterator[np.ndarray]:
    for w in walk_styles_2d(G, seeds, steps, psi, mean):
        yield to_uint8(G.synthesis(w, grid).clamp(-1, 1))[0]


@dataclass(frozen=True)
class _Frame:
    """Where and how every image of a run is rendered (`_frame`, --foveated, --fixation, --psi)."""

    size: int
    grid: torch.Tensor
    exact_grid: bool
    fixation: tuple[float, float]
    mean: torch.Tensor | None


def run(args: argparse.Namespace) -> int:
    seeds, walk = parse_seeds(args.seeds), parse_seeds(args.seeds, unique=False)  # a walk may come back
    _check_arguments(args, walk)
    fixation = _point(args.fixation or "0,0", "--fixation")
    # Videos: mp4 or GIF, as the frames' size and PyAV decide when they are written.
    pans, walk_video = (
        named([f"seed{seed:04d}_pan" for seed in seeds], VIDEO_SUFFIXES_WRITTEN),
        named(["interpolation"], VIDEO_SUFFIXES_WRITTEN),
    )
    writes = [f"seed{seed:04d}.png" for seed in seeds] + ["grid.png"]
    writes += (pans if args.pan else []) + (walk_video if args.interpolate else [])
    refuse_earlier_outputs(args.outdir, writes, args.overwrite, also=pans)  # a walk is no seed's
    device = resolve_device(args.device)
    G = load_generator2d(args.checkpoint, device)
    _check_model_fits(args, G)
    size = args.size or G.config.size
    grid, exact_grid = _frame(args, G, size)
    _note_settings(args, size)
    frame = _Frame(size, grid, exact_grid, fixation, G.mean_style() if args.psi != 1 else None)
    record = _record(args, size, fixation, device, G.config.panorama)
    videos = []
    outdir = Path(args.outdir)
    tiles = []
    in_grid = grid_tiles(len(seeds), *grid.shape[1:3])
    pixels = grid.shape[1] * grid.shape[2] if not args.foveated else args.foveated
    bar = tqdm(total=len(seeds) * pixels, unit="px", unit_scale=True, desc="sample2d", disable=args.quiet)
    for seed in seeds:
        w, image = _seed_image(G, seed, args, frame, bar)
        tile = to_uint8(image.clamp(-1, 1))[0]
        save_png(tile, outdir / f"seed{seed:04d}.png", record | {"seed": seed, "output": "image"})
        if len(tiles) < in_grid:  # only what the grid shows is kept in memory
            tiles.append(tile)
        if args.pan:
            frames = pan_frames(G, w, args.pan, args.view, size)
            panned = record | {
                "seed": seed,
                "output": "pan",
                "pan": args.pan,
                "view": args.view,
                "fps": args.fps,
            }
            videos.append(write_mp4_or_gif(frames, outdir / f"seed{seed:04d}_pan", args.fps, panned))
    bar.close()
    save_png(
        make_grid(np.stack(tiles)), outdir / "grid.png", record | {"seeds": seeds[:in_grid], "output": "grid"}
    )
    if args.interpolate:
        walked = record | {
            "seeds": walk,
            "steps_between": args.interpolate,
            "fps": args.fps,
            "output": "walk",
        }
        coords = None if exact_grid else grid
        videos.append(_write_walk(G, walk, args, frame.mean, coords, outdir, walked))
    _report(args, seeds, walk, tiles[0].shape[:2], in_grid, videos, outdir)
    return 0


def _note_settings(args: argparse.Namespace, size: int) -> None:
    """Notes on stderr about settings that do less than they seem to."""
    if args.foveated and args.foveated >= size * size:  # scattered points cost what pixels cost
        print(f"cips3d sample2d: note: --foveated {args.foveated} renders as many points as the image has "
              f"pixels ({size}x{size}) or more; without it the image is rendered whole, exactly, for less.",
              file=sys.stderr)  # fmt: skip
    if args.noise and (args.pan or args.interpolate):
        print("cips3d sample2d: note: --noise is added to the images, not to the videos (noise drawn for "
              "each frame would flicker).", file=sys.stderr)  # fmt: skip


@torch.no_grad()
def _seed_image(
    G: Generator2D, seed: int, args: argparse.Namespace, frame: _Frame, bar: tqdm
) -> tuple[torch.Tensor, torch.Tensor]:
    """(the style w [1, D], the image [1, 3, H, W]) of `seed`; the bar moves by its pixels."""
    seed_draws = torch.Generator().manual_seed(seed)
    w = G.mapping(G.sample_latents(1, seed_draws))
    if frame.mean is not None:
        w = G.truncate(w, args.psi, frame.mean)
    if args.foveated:
        draws = torch.Generator().manual_seed(seed)
        image = foveated_image(G, w, frame.size, args.foveated, frame.fixation, generator=draws).image
        bar.update(args.foveated)
        return w, image
    noise = "random" if args.noise else "none"  # drawn from the seed's generator, after z
    coords = None if frame.exact_grid else frame.grid
    return w, G.synthesis(w, coords, noise, seed_draws, on_pixels=bar.update)


def _report(args, seeds: list[int], walk: list[int], shape, in_grid: int, videos: list[Path], outdir) -> None:
    """What was written, on stdout; the GIF fallback's note on stderr."""
    height, width = shape
    print(f"wrote {counted(len(seeds), 'image')} of {width}x{height} and grid.png to {outdir}/")
    if in_grid < len(seeds):
        print(f"grid.png shows the first {counted(in_grid, 'image')} (a grid of all would be too large).")
    if args.pan:
        turning = f"turning once around in {counted(args.pan, 'frame')}"
        print(f"wrote {counted(len(seeds), 'video')} {turning} ({videos[0].name}, ...)")
    if args.interpolate:
        print(f"wrote {videos[-1].name}: {(len(walk) - 1) * args.interpolate + 1} frames from seed to seed")
    note_gif_fallback("sample2d", videos)


def turn_frames(text: str) -> int:
    """argparse type of --pan: a turn around the panorama shows 2 frames or more (1 was a still video)."""
    return int_at_least(text, 2, MAX_FRAMES, VIDEO_LIMIT)


def foveated_count(text: str) -> int:
    """argparse type of --foveated: the pixels between which the image is interpolated need a triangle,
    and their triangulation cannot be interrupted (a million ran for minutes through Ctrl-C)."""
    return int_at_least(text, 3, MAX_FOVEATED_POINTS, "the most a foveated image interpolates between")


def _check_arguments(args: argparse.Namespace, seeds: list[int]) -> None:
    """The flag checks that need no model (said before it is loaded)."""
    if not 0 < args.extent <= MAX_COORDINATE:
        raise UserError(f"--extent must be positive and at most {MAX_COORDINATE:g}, got {args.extent:g}.")
    if args.noise and args.foveated:
        raise UserError("--noise is added to whole frames; it cannot be combined with --foveated.")
    if args.interpolate and (len(seeds) < 2 or args.foveated):
        raise UserError("--interpolate walks from seed to seed: give two seeds or more, and no --foveated.")
    if args.interpolate:
        check_walk_length(args.interpolate, len(seeds), "--interpolate")
    if args.pan or args.interpolate:
        check_frame_rate(args.fps)
    else:
        refuse_ignored({"--fps": given(args, "fps")}, "without a video (--pan or --interpolate)")
    if not args.pan:
        refuse_ignored({"--view": given(args, "view")}, "without --pan")
    if not args.foveated:
        refuse_ignored({"--fixation": args.fixation is not None}, "without --foveated")
    else:  # the foveated points cover the training frame (it ignored --extent)
        refuse_ignored({"--extent": given(args, "extent")}, "with --foveated (it renders the training frame)")
    if args.pan and not 0 < args.view <= 360:
        raise UserError(f"--view must be in (0, 360] degrees, got {args.view}.")
    if _window_asked(args):
        _check_window(args)


def _check_window(args: argparse.Namespace) -> None:
    """--center and --zoom frame a window as `cips3d view` does; the whole-frame options cannot join them."""
    whole = {"--extent": given(args, "extent"), "--turns": given(args, "turns"),
             "--foveated": bool(args.foveated), "--pan": bool(args.pan)}  # fmt: skip
    clashing = [flag for flag, asked in whole.items() if asked]
    if clashing:
        raise UserError(
            f"--center and --zoom frame a window as `cips3d view` does; {' and '.join(clashing)} "
            f"{'frames' if len(clashing) == 1 else 'frame'} the whole image: give one or the other."
        )
    _window(args)  # said before the model is loaded


def _window(args: argparse.Namespace) -> tuple[float, float, float]:
    """(x, y, zoom) of --center and --zoom (defaults 0,0 and 1), checked as the viewer checks its query."""
    x, y = _point(args.center or "0,0", "--center")
    zoom = 1.0 if args.zoom is None else args.zoom
    check_window(x, y, zoom, "--center", "--zoom")
    return x, y, zoom


def _check_model_fits(args: argparse.Namespace, G: Generator2D) -> None:
    """The flag checks that depend on the model's kind."""
    if args.foveated and G.config.grid_width != G.config.size:
        raise UserError("--foveated renders square frames; this run's images are not square.")
    if args.pan and not G.config.panorama:
        raise UserError("--pan is for panorama runs (train2d --panorama); this run's images are flat.")
