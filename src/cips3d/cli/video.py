"""`cips3d video`: one video per seed along a camera trajectory, or one latent walk through the seeds."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from cips3d import constants as K
from cips3d.cli.common import (
    VIDEO_SUFFIXES_WRITTEN,
    add_model_arguments,
    add_overwrite_argument,
    check_frame_rate,
    check_walk_length,
    comma_items,
    finite_float,
    fitted_styles,
    frame_count,
    given,
    model_record,
    named,
    num_steps,
    output_record,
    raise_trajectory_length,
    refuse_earlier_outputs,
    refuse_ignored,
    styles_name,
    truncation,
)
from cips3d.cli.speed import (
    add_chunk_rows_argument,
    add_precision_argument,
    rendering_generator,
    speed_options,
)
from cips3d.config import RenderConfig
from cips3d.errors import ConfigError, UserError
from cips3d.inference.sample import parse_seeds
from cips3d.inference.trajectories import (
    MAX_FOV,
    TRAJECTORIES,
    ZOOMING,
    TooManyFrames,
    Trajectory,
    make_trajectory,
    trajectory_function,
)
from cips3d.inference.video import (
    METHODS,
    SPACES,
    LatentWalk,
    check_panels,
    frame_size,
    seed_styles,
    video_frames,
)
from cips3d.io.video import DEFAULT_FPS, check_video_target, mp4_available, write_video
from cips3d.models.generator3d import Generator3D

FORMATS = ("mp4", "gif")
SEEDS = "0"  # the default of --seeds
WALK = {"space": "z", "method": "slerp", "steps_between": 30}  # --interpolate's options, their defaults

EXAMPLES = """examples:
  cips3d video --preset tiny --seeds 0-3 --size 64 --frames 24 --outdir outputs/video
  cips3d video --checkpoint G_ema.pth --preset ffhq --seeds 7 --size 256 --trajectory circle_near_far \\
      --panels image,aux,depth --text --psi 0.7
  cips3d video --checkpoint G_ema.pth --preset ffhq --seeds 1,5,9 --interpolate --space w \\
      --trajectory still --steps-between 40
  cips3d video --checkpoint runs/tiny --styles outputs/invert/styles.safetensors --trajectory circle
                                     # a photo fitted by `cips3d invert`, instead of seeds
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "video",
        help="render videos along a camera trajectory",
        description="Render one video per seed along a camera trajectory (seedNNNN.mp4), or with "
        "--interpolate one video walking through the seeds' latents. Frames are rendered one at a time, "
        "deterministically unless --stochastic.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(p)
    g = p.add_argument_group("what to render")
    g.add_argument(
        "--seeds", default=SEEDS, help=f"seeds as a list and/or ranges, e.g. 0-3,42 (default {SEEDS})"
    )
    g.add_argument(
        "--styles", help="instead of seeds: the styles.safetensors of `cips3d invert` (video <name>.mp4)"
    )
    g.add_argument(
        "--trajectory", default="orbit", help=f"camera path: {', '.join(TRAJECTORIES)} (default orbit)"
    )
    g.add_argument(
        "--frames",
        type=frame_count,
        help="the trajectory's num_frames (frames per turn for circle; for the translate ones the turning "
        "part, after 56 frames of sliding; default: the trajectory's own)",
    )
    g.add_argument(
        "--fov", type=finite_float, help="field of view in degrees (default 12; near/far zoom to 20)"
    )
    g.add_argument("--size", type=int, default=128, help="image height and width in pixels (default 128)")
    g.add_argument("--psi", type=truncation, default=1.0, help="truncation in [0, 1] (1: none)")
    g.add_argument(
        "--num-steps", type=num_steps, default=K.NUM_STEPS, help="coarse samples per ray (default 12)"
    )
    g.add_argument(
        "--panels", default="image", help="comma-separated panels: image, aux, depth, normals (default image)"
    )
    g.add_argument("--stochastic", action="store_true", help="the official random sampler (seeded per video)")
    add_precision_argument(g)
    g.add_argument("--text", action="store_true", help="write pitch, yaw and fov on every frame")
    w = p.add_argument_group("latent walk")
    w.add_argument(
        "--interpolate",
        action="store_true",
        help="one video walking through the seeds' latents; the camera path loops under it "
        "(--trajectory still: a fixed camera)",
    )
    w.add_argument("--space", default=WALK["space"], help="interpolate latents z or styles w (default z)")
    w.add_argument("--method", default=WALK["method"], help="slerp or lerp (default slerp)")
    w.add_argument(
        "--steps-between",
        type=frame_count,
        default=WALK["steps_between"],
        help=f"frames from one seed to the next (default {WALK['steps_between']})",
    )
    o = p.add_argument_group("how and where")
    o.add_argument(
        "--fps", type=finite_float, default=DEFAULT_FPS, help=f"frames per second (default {DEFAULT_FPS:g})"
    )
    o.add_argument(
        "--format",
        help="mp4 (H.264) or gif (default: mp4, or gif with a note where PyAV lacks libx264 or a side is "
        "odd)",
    )
    add_chunk_rows_argument(o)
    o.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    o.add_argument("--outdir", default="outputs/video", help="output folder (default outputs/video)")
    add_overwrite_argument(o)
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


@dataclass(frozen=True)
class _Plan:
    """Everything checked before a frame is rendered."""

    seeds: list[int]
    render: RenderConfig
    trajectory: Trajectory
    panels: tuple[str, ...]
    suffix: str


def _suffix(name: str | None, width: int, height: int) -> str:
    """The file suffix of --format; mp4 falls back to GIF when PyAV cannot encode H.264, and so does the
    default where a side is odd (yuv420p needs even ones), as `invert --video` and `sample2d --pan` do."""
    if name is not None and name not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {name!r}.")
    if name != "gif" and not mp4_available():
        print("cips3d video: PyAV with libx264 is not available; writing GIF instead.", file=sys.stderr)
        return ".gif"
    if name is None and (width % 2 or height % 2):
        print(f"cips3d video: note: GIF instead of MP4, which (yuv420p) needs an even width and height, "
              f"not {width}x{height}.", file=sys.stderr)  # fmt: skip
        return ".gif"
    return f".{name or 'mp4'}"


def _check_numbers(args: argparse.Namespace, seeds: list[int]) -> None:
    """Refuse impossible numbers in one sentence each (argparse would print its usage too)."""
    check_frame_rate(args.fps)
    if args.styles and not args.interpolate:
        refuse_ignored({"--seeds": given(args, "seeds")}, "with --styles (the fitted styles replace them)")
    if not args.interpolate:
        changed = {f"--{name.replace('_', '-')}": given(args, name) for name in WALK}
        refuse_ignored(changed, "without --interpolate")
        return
    if args.styles:
        raise UserError("--interpolate walks between seeds; it cannot be combined with --styles.")
    if args.trajectory == "still":  # the walk's length is --steps-between's; a still camera adds none
        refuse_ignored({"--frames": args.frames is not None}, "in a walk with --trajectory still")
    if len(seeds) < 2:
        raise UserError(f"--interpolate walks between seeds and needs at least two, got {args.seeds!r}.")
    check_walk_length(args.steps_between, len(seeds), "--steps-between")
    if args.space not in SPACES:
        raise UserError(f"--space must be one of {', '.join(SPACES)}, got {args.space!r}.")
    if args.method not in METHODS:
        raise UserError(f"--method must be one of {', '.join(METHODS)}, got {args.method!r}.")


def _plan(args: argparse.Namespace) -> _Plan:
    """Parse and check every option; nothing is rendered or loaded yet."""
    seeds = parse_seeds(args.seeds, unique=not args.interpolate)  # a walk may come back to a seed
    _check_numbers(args, seeds)
    trajectory_function(args.trajectory)  # an unknown name fails here, listing the known ones
    render = RenderConfig(
        img_size=args.size,
        num_steps=args.num_steps,
        deterministic=not args.stochastic,
        chunk_rows=args.chunk_rows,
        **speed_options(args),
    )
    if args.trajectory in ZOOMING and args.fov is not None and not args.fov < MAX_FOV:
        raise UserError(f"--trajectory {args.trajectory} zooms out from --fov to {MAX_FOV:g} degrees and "
                        f"back: give a --fov under {MAX_FOV:g} (got {args.fov:g}).")  # fmt: skip
    options = {"num_frames": args.frames, "fov": args.fov}
    try:
        trajectory = make_trajectory(args.trajectory, **{k: v for k, v in options.items() if v is not None})
    except TooManyFrames as err:
        raise_trajectory_length(err.frames, args.frames, args.trajectory, "--trajectory")
    try:
        panels = check_panels([p.lower() for p in comma_items(args.panels, "--panels")])
    except ConfigError as err:  # "panels must ..." said which flag only in the empty-item case
        raise UserError(f"--panels {args.panels!r}: {err}") from None
    width, height = frame_size(render, panels)
    suffix = _suffix(args.format, width, height)
    check_video_target(Path(args.outdir) / f"video{suffix}", width, height)
    return _Plan(seeds, render, trajectory, panels, suffix)


def _write_seed_video(G: Generator3D, plan: _Plan, args: argparse.Namespace, seed: int, record: dict) -> Path:
    """seedNNNN.<suffix>: the seed's latents along the trajectory; stochastic draws from its generator."""
    styles, generator = seed_styles(G, seed, args.psi)
    frames = video_frames(
        G,
        styles,
        plan.trajectory,
        plan.render,
        panels=plan.panels,
        text=args.text,
        generator=generator,
        progress=not args.quiet,
        desc=f"seed{seed:04d}",
    )
    path = Path(args.outdir) / f"{_seed_stem(seed)}{plan.suffix}"
    write_video(frames, path, fps=args.fps, record=record | {"seed": seed})
    return path


def _write_styles_video(G: Generator3D, plan: _Plan, args: argparse.Namespace, record: dict) -> Path:
    """<name of the styles file>.<suffix>: fitted styles (`cips3d invert`) along the trajectory."""
    styles = G.truncate(fitted_styles(args, G).styles, args.psi)
    frames = video_frames(
        G, styles, plan.trajectory, plan.render, panels=plan.panels, text=args.text,
        generator=torch.Generator().manual_seed(0), progress=not args.quiet, desc=styles_name(args.styles),
    )  # fmt: skip
    path = Path(args.outdir) / f"{styles_name(args.styles)}{plan.suffix}"
    write_video(frames, path, fps=args.fps, record=record | {"styles": str(Path(args.styles).resolve())})
    return path


def _write_walk(G: Generator3D, plan: _Plan, args: argparse.Namespace, record: dict) -> Path:
    """interpolation_<space>_<method>.<suffix>: the walk through the seeds, the trajectory looping
    under it; stochastic draws come from a generator seeded with the first seed."""
    walk = LatentWalk(
        G, plan.seeds, steps_between=args.steps_between, space=args.space, method=args.method, psi=args.psi
    )
    frames = video_frames(
        G,
        walk,
        plan.trajectory.looped(len(walk)),
        plan.render,
        panels=plan.panels,
        text=args.text,
        generator=torch.Generator().manual_seed(plan.seeds[0]),
        progress=not args.quiet,
        desc="interpolation",
    )
    path = Path(args.outdir) / f"{_walk_stem(args)}{plan.suffix}"
    walked = {"seeds": plan.seeds, "steps_between": args.steps_between, "space": args.space,
              "method": args.method, "video_frames": len(walk)}  # fmt: skip
    write_video(frames, path, fps=args.fps, record=record | walked)
    return path


def _record(args: argparse.Namespace, plan: _Plan, device: object) -> dict:
    """What every video of this run records in its comment (`write_video(record=...)`)."""
    # --frames as given (None: the trajectory's own; near/far ones make two turns of it), the frames
    # written, and the fov the trajectory starts at (near/far ones zoom from it): the render's is unused.
    path = {"trajectory": args.trajectory, "frames": args.frames, "video_frames": plan.trajectory.num_frames,
            "fov": plan.trajectory.fov[0], "fps": args.fps, "psi": args.psi, "panels": list(plan.panels),
            "text": args.text}  # fmt: skip
    record = output_record("video", args, model_record(args), plan.render, device) | path
    del record["render"]["fov"]
    return record


def _stems(args: argparse.Namespace, plan: _Plan) -> list[str]:
    """The names of the videos `run` writes, without their suffix (`refuse_earlier_outputs`)."""
    if args.interpolate:
        return [_walk_stem(args)]
    if args.styles:
        return [styles_name(args.styles)]
    return [_seed_stem(seed) for seed in plan.seeds]


def _seed_stem(seed: int) -> str:
    """A seed's video, without its suffix."""
    return f"seed{seed:04d}"


def _walk_stem(args: argparse.Namespace) -> str:
    """The walk's video, without its suffix."""
    return f"interpolation_{args.space}_{args.method}"


def run(args: argparse.Namespace) -> int:
    plan = _plan(args)
    stems = _stems(args, plan)
    also = named(stems, VIDEO_SUFFIXES_WRITTEN)  # the other format: a GIF beside the new mp4
    refuse_earlier_outputs(args.outdir, named(stems, [plan.suffix]), args.overwrite, also=also)
    device, G = rendering_generator(args)
    record = _record(args, plan, device)
    if args.interpolate:
        paths = [_write_walk(G, plan, args, record)]
    elif args.styles:
        paths = [_write_styles_video(G, plan, args, record)]
    else:
        paths = [_write_seed_video(G, plan, args, seed, record) for seed in plan.seeds]
    width, height = frame_size(plan.render, plan.panels)
    what = paths[0].name if len(paths) == 1 else f"{len(paths)} videos"
    print(f"wrote {what} of {width}x{height} to {args.outdir}/")
    return 0
