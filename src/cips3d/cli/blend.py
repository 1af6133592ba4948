"""`cips3d blend`: network interpolation between a source model and a fine-tuned target (spec 5.2)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cips3d import constants as K
from cips3d.cli.common import (
    VIDEO_LIMIT,
    VIDEO_SUFFIXES_WRITTEN,
    add_overwrite_argument,
    angle,
    check_frame_rate,
    check_model_folder_target,
    comma_items,
    finite_float,
    frame_count,
    given,
    int_at_least,
    loaded_path,
    named,
    output_record,
    pitch_angle,
    positive_int,
    raise_trajectory_length,
    refuse_earlier_outputs,
    refuse_ignored,
    resolve_device,
    truncation,
)
from cips3d.config import GENERATOR_PRESETS, PoseConfig, RenderConfig
from cips3d.errors import UserError
from cips3d.inference.blend import (
    DEFAULT_BLEND_LAYERS,
    blend_generators,
    check_gamma,
    check_same_architecture,
    gamma_sweep_frames,
    resolve_blend_layers,
)
from cips3d.inference.sample import parse_seeds, sample_seeds
from cips3d.inference.trajectories import MAX_FRAMES, TooManyFrames, make_trajectory
from cips3d.inference.video import side_by_side_frames
from cips3d.io.checkpoint import MissingPresetError, carries_own_config, load_generator, save_generator
from cips3d.io.images import make_grid, save_png, to_uint8
from cips3d.io.video import DEFAULT_FPS, check_video_target, mp4_available, write_video
from cips3d.models.generator3d import Generator3D
from cips3d.rendering.cameras import Camera
from cips3d.words import counted

FRAMES = 30  # frames of a --video trajectory
BATCH = 4  # images rendered together

EXAMPLES = """examples:
  cips3d blend --source ffhq.pth --source-preset ffhq --target cartoon.pth --target-preset ffhq --seeds 0-3
  cips3d blend --source runs/ffhq --target runs/cartoon --gammas 0,0.25,0.5,0.75,1 --layers 1024,512,256
  cips3d blend --source runs/ffhq --target runs/cartoon --gamma 0.5 --save-model models/blend   # a model
"""


@dataclass(frozen=True)
class BlendSettings:
    seeds: list[int]
    gammas: list[float]
    layers: list[str]
    render: RenderConfig
    pose: PoseConfig


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "blend",
        help="blend the INR layers of a fine-tuned model into its source",
        description="Network interpolation (layer swapping): for the chosen INR blocks, "
        "p = (1 - gamma) p_source + gamma p_target; everything else is the source's. Writes one "
        "side-by-side PNG per seed: source | target | blended (one per gamma).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    m = p.add_argument_group("models (our folders, training runs, or official .pth files)")
    m.add_argument("--source", required=True, help="the source generator (e.g. FFHQ)")
    m.add_argument("--target", required=True, help="the target generator of the same architecture")
    presets = sorted(GENERATOR_PRESETS)
    m.add_argument("--source-preset", choices=presets, help="config of an official .pth source (e.g. ffhq)")
    m.add_argument("--target-preset", choices=presets, help="config of an official .pth target (e.g. ffhq)")
    b = p.add_argument_group("blending")
    gamma = b.add_mutually_exclusive_group()
    gamma.add_argument("--gamma", type=finite_float, help="weight of the target in [0, 1] (default 0.5)")
    gamma.add_argument("--gammas", help="a sweep of gammas, e.g. 0,0.25,0.5,0.75,1")
    b.add_argument(
        "--layers",
        default=",".join(DEFAULT_BLEND_LAYERS),
        help="INR blocks to blend, from 4,8,16,32,64,128,256,512,1024 (default: the official "
        f"{','.join(DEFAULT_BLEND_LAYERS)})",
    )
    b.add_argument(
        "--blend-inr-mapping",
        action="store_true",
        help="also blend the INR mapping network (the official demo does not: only INR blocks)",
    )
    r = p.add_argument_group("what to render")
    r.add_argument("--seeds", default="0-3", help="seeds as a list and/or ranges (default 0-3)")
    r.add_argument("--size", type=int, default=128, help="image height and width in pixels (default 128)")
    r.add_argument("--yaw", type=angle, default=K.YAW_MEAN, help="camera yaw in radians (pi/2: front)")
    r.add_argument("--pitch", type=pitch_angle, default=K.PITCH_MEAN, help="camera pitch in radians, 0 to pi")
    r.add_argument("--psi", type=truncation, default=1.0, help="truncation in [0, 1] (1: none)")
    r.add_argument("--deterministic", action="store_true", help="no jitter or random importance samples")
    v = p.add_argument_group("video (instead of images)")
    v.add_argument("--video", metavar="TRAJECTORY", help="side-by-side video along a trajectory (e.g. yaw)")
    v.add_argument("--frames", type=frame_count, default=FRAMES, help=f"--video frames (default {FRAMES})")
    v.add_argument(
        "--sweep-frames", type=sweep_frames, help="a video sweeping gamma from 0 to 1 in N (>= 2) frames"
    )
    v.add_argument(
        "--fps", type=finite_float, default=DEFAULT_FPS, help=f"frames per second (default {DEFAULT_FPS:g})"
    )
    v.add_argument("--format", choices=("mp4", "gif"), default="mp4", help="video format (default mp4)")
    o = p.add_argument_group("how and where")
    o.add_argument(
        "--batch-size", type=positive_int, default=BATCH, help=f"images rendered together (default {BATCH})"
    )
    o.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    o.add_argument("--outdir", default="outputs/blend", help="output folder (default outputs/blend)")
    add_overwrite_argument(o)
    o.add_argument(
        "--save-model",
        metavar="DIR",
        help="also write the blended generator (one --gamma) as a model folder for sample, video, mesh, "
        "view, convert",
    )
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def sweep_frames(text: str) -> int:
    """argparse type of --sweep-frames: a sweep from gamma 0 to gamma 1 has both ends."""
    return int_at_least(text, 2, MAX_FRAMES, VIDEO_LIMIT)


def _parse_gammas(args: argparse.Namespace) -> list[float]:
    if args.gammas is None:
        values = [0.5 if args.gamma is None else args.gamma]
    else:
        try:
            values = [float(x) for x in comma_items(args.gammas, "--gammas")]
        except ValueError:
            raise UserError(f"--gammas must be numbers separated by commas, got {args.gammas!r}.") from None
    try:
        return [check_gamma(v) for v in values]
    except UserError as err:
        raise UserError(f"--gamma/--gammas: {err}") from None


def _settings(args: argparse.Namespace) -> BlendSettings:
    """Check every option before a model is loaded."""
    seeds = parse_seeds(args.seeds)
    gammas = _parse_gammas(args)
    layers = resolve_blend_layers(comma_items(args.layers, "--layers"))
    render = RenderConfig(img_size=args.size, deterministic=args.deterministic)
    return BlendSettings(seeds, gammas, layers, render, PoseConfig.fixed(args.yaw, args.pitch))


def _load(path: str, preset: str | None, device, side: str) -> Generator3D:
    """The --source or --target model (`side`); its --SIDE-preset only for an official .pth."""
    if preset is not None and carries_own_config(path):
        raise UserError(f"{path} carries its own config; --{side}-preset is for an official .pth {side}.")
    try:
        return load_generator(path, preset=preset, device=device)
    except MissingPresetError as err:  # named by this command's flag for that side
        if err.fits:
            raise UserError(
                f"{path} is an official .pth {side}: give --{side}-preset {err.fits[0]}."
            ) from err
        raise UserError(
            f"{path} is an official .pth {side} that fits no preset: convert it with `cips3d convert "
            f"{path} FOLDER --official-config CONFIG.json` and give that folder as --{side}."
        ) from err


def _check_video(args: argparse.Namespace, s: BlendSettings, columns: int) -> str | None:
    """The video file suffix, after every check that needs no model (None: images)."""
    if args.video is None:
        refuse_ignored({"--frames": given(args, "frames")}, "without --video (the length of its trajectory)")
    if args.video is None and args.sweep_frames is None:
        refuse_ignored({"--fps": given(args, "fps"), "--format": given(args, "format")}, "without a video")
        return None
    refuse_ignored({"--deterministic": args.deterministic, "--batch-size": given(args, "batch_size")},
                   "in a video (videos are deterministic and rendered frame by frame)")  # fmt: skip
    if args.video is not None:
        refuse_ignored({"--yaw": given(args, "yaw"), "--pitch": given(args, "pitch")},
                       f"with --video {args.video} (its trajectory moves the camera)")  # fmt: skip
    else:
        refuse_ignored({"--gamma": args.gamma is not None, "--gammas": args.gammas is not None},
                       "with --sweep-frames (it sweeps gamma from 0 to 1)")  # fmt: skip
    if args.video is not None and args.sweep_frames is not None:
        raise UserError("give --video or --sweep-frames, not both.")
    check_frame_rate(args.fps)
    if args.video is not None:
        try:
            make_trajectory(args.video, num_frames=args.frames)  # an unknown name fails here
        except TooManyFrames as err:
            raise_trajectory_length(err.frames, args.frames, args.video, "--video")
    suffix = ".mp4" if args.format == "mp4" and mp4_available() else ".gif"
    width = s.render.img_size * (columns if args.video is not None else 1)
    check_video_target(Path(f"x{suffix}"), width, s.render.img_size)
    return suffix


def _output_names(
    args: argparse.Namespace, s: BlendSettings, suffix: str | None
) -> tuple[list[str], list[str]]:
    """(the rows' or the videos' file names, the videos' other format) for `refuse_earlier_outputs`: a
    yaw video, a sweep and the rows of a seed may share a folder."""
    if suffix is None:
        return [f"seed{seed:04d}.png" for seed in s.seeds], []
    stems = [f"seed{seed:04d}_{_video_kind(args)}" for seed in s.seeds]
    return named(stems, [suffix]), named(stems, VIDEO_SUFFIXES_WRITTEN)


def _video_kind(args: argparse.Namespace) -> str:
    """What a video's name says after its seed: the trajectory, or 'sweep'."""
    return args.video if args.video is not None else "sweep"


def _write_videos(args, s: BlendSettings, source, target, models, suffix: str, device) -> int:
    outdir = Path(args.outdir)
    render = replace(s.render, deterministic=True)  # videos do not flicker
    about = {"layers": s.layers, "psi": args.psi, "fps": args.fps}
    if args.video is not None:
        about |= {
            "gammas": s.gammas,
            "trajectory": args.video,
            "frames": args.frames,
            "output": "source | target | blends, side by side",
        }
    else:
        about |= {
            "sweep_frames": args.sweep_frames,
            "pose": _pose(args),
            "output": "a sweep of gamma from 0 to 1",
        }
    record = output_record("blend", args, _models_record(args), render, device) | about
    for seed in s.seeds:
        if args.video is not None:
            trajectory = make_trajectory(args.video, num_frames=args.frames)
            frames = side_by_side_frames(models, seed, trajectory, render, psi=args.psi)
        else:
            gammas = [i / max(args.sweep_frames - 1, 1) for i in range(args.sweep_frames)]
            camera = Camera.from_angles(args.yaw, args.pitch)
            frames = gamma_sweep_frames(source, target, gammas, seed, camera, render, layers=s.layers,
                                        blend_inr_mapping=args.blend_inr_mapping, psi=args.psi)  # fmt: skip
        kind = _video_kind(args)  # the two kinds never overwrite each other
        write_video(
            frames, outdir / f"seed{seed:04d}_{kind}{suffix}", fps=args.fps, record=record | {"seed": seed}
        )
    print(f"wrote {counted(len(s.seeds), 'video')} to {outdir}/ (seed{s.seeds[0]:04d}_{kind}{suffix}, ...)")
    return 0


def _check_save_model(args: argparse.Namespace, s: BlendSettings) -> None:
    """--save-model writes one model: one gamma, and a folder it may write (said before any loading)."""
    if args.save_model is None:
        return
    if args.sweep_frames is not None or len(s.gammas) != 1:
        raise UserError(
            "--save-model writes one blended model: give one --gamma (not --gammas or --sweep-frames)."
        )
    check_model_folder_target(Path(args.save_model), None, args.source, args.target)


def _save_model(args: argparse.Namespace, s: BlendSettings, blended: Generator3D) -> None:
    save_generator(blended, args.save_model)
    mapping = " and the INR mapping" if args.blend_inr_mapping else ""
    print(f"wrote {args.save_model}/ (gamma {s.gammas[0]:g} of INR blocks {','.join(s.layers)}{mapping}; "
          f"`cips3d sample --checkpoint {args.save_model}` renders it)")  # fmt: skip


def _pose(args: argparse.Namespace) -> dict:
    """The camera of rows and sweeps, for their records."""
    return {"yaw": args.yaw, "pitch": args.pitch}


def _models_record(args: argparse.Namespace) -> dict:
    """The two models and how they are blended, for `output_record`."""
    models = {"source": loaded_path(args.source), "target": loaded_path(args.target),
              "blend_inr_mapping": args.blend_inr_mapping}  # fmt: skip
    presets = {"source_preset": args.source_preset, "target_preset": args.target_preset}
    return models | {k: v for k, v in presets.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    s = _settings(args)
    suffix = _check_video(args, s, columns=2 + len(s.gammas))
    _check_save_model(args, s)
    writes, also = _output_names(args, s, suffix)
    refuse_earlier_outputs(args.outdir, writes, args.overwrite, also=also)
    device = resolve_device(args.device)
    source = _load(args.source, args.source_preset, device, "source")
    target = _load(args.target, args.target_preset, device, "target")
    check_same_architecture(source, target)
    models = [source, target] + [
        blend_generators(source, target, g, s.layers, args.blend_inr_mapping) for g in s.gammas
    ]
    if args.save_model is not None:
        _save_model(args, s, models[2])
    if suffix is not None:
        return _write_videos(args, s, source, target, models, suffix, device)
    outdir = Path(args.outdir)
    bar = tqdm(total=len(s.seeds) * len(models), unit="img", desc="blend", disable=args.quiet)
    # Each model renders every seed with the seed's own latents and draws, so columns differ only by weights.
    rows: dict[int, list[np.ndarray]] = {seed: [] for seed in s.seeds}
    for model in models:
        for batch in sample_seeds(
            model, s.seeds, render=s.render, pose=s.pose, psi=args.psi, batch_size=args.batch_size
        ):
            for seed, img in zip(batch.seeds, to_uint8(batch.output.img), strict=True):
                rows[seed].append(img)
            bar.update(len(batch.seeds))
    bar.close()
    gammas = ", ".join(f"{g:g}" for g in s.gammas)
    settings = {"gammas": s.gammas, "layers": s.layers, "psi": args.psi, "pose": _pose(args),
                "output": f"a row: source | target | gamma {gammas}"}  # fmt: skip
    record = output_record("blend", args, _models_record(args), s.render, device) | settings
    for seed, tiles in rows.items():
        row = make_grid(np.stack(tiles), ncols=len(tiles))
        save_png(row, outdir / f"seed{seed:04d}.png", record | {"seed": seed})
    print(f"wrote {counted(len(s.seeds), 'row')} [source | target | gamma {gammas}] to {outdir}/")
    return 0
