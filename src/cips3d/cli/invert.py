"""`cips3d invert`: find the styles and camera under which a model renders a photo, then show it in 3D."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch
from PIL import UnidentifiedImageError
from tqdm import tqdm

from cips3d import constants as K
from cips3d.cli.common import (
    add_model_arguments,
    add_overwrite_argument,
    angle,
    check_frame_rate,
    finite_float,
    fit_summary,
    frame_count,
    given,
    image_side,
    model_name,
    model_record,
    note_gif_fallback,
    output_record,
    photo_pixels,
    pitch_angle,
    positive_int,
    refuse_earlier_outputs,
    refuse_ignored,
    refuse_writing_over,
)
from cips3d.cli.speed import (
    add_precision_argument,
    rendering_generator,
    speed_options,
)
from cips3d.config import RenderConfig
from cips3d.data.images import IMAGE_EXTENSIONS, is_image_name, unreadable_reason
from cips3d.errors import UserError
from cips3d.inference.inversion import (
    Inversion,
    InversionConfig,
    fit_panels,
    image_to_target,
    invert,
    save_inversion,
    target_scale_known,
)
from cips3d.inference.trajectories import make_trajectory
from cips3d.inference.video import video_frames
from cips3d.io.checkpoint2d import is_generator2d
from cips3d.io.files import atomic_write
from cips3d.io.images import save_png, to_uint8
from cips3d.io.video import DEFAULT_FPS, write_mp4_or_gif
from cips3d.metrics.perceptual import load_perceptual

PERCEPTUAL_WEIGHT = 0.1
"""Default weight of the perceptual term: the two losses then start at similar sizes on photos (pixel
MSE of images in [-1, 1] about 0.05-0.1, perceptual distance about 0.5-1)."""

VIDEO_FRAMES = 48  # --video's yaw sweep

EXAMPLES = """examples:
  cips3d invert --checkpoint runs/faces --image me.jpg --size 64 --steps 300 --video
  cips3d invert --checkpoint G_ema.pth --preset ffhq --image photo.png --per-layer --outdir inverted
  cips3d invert --preset tiny --image photo.png --steps 20 --size 16      # a quick look on a CPU
  cips3d invert --checkpoint runs/faces --image photos/ --outdir fits     # every image of a folder

Writes target.png, reconstruction.png (target | render | aux NeRF image | depth), styles.safetensors
(the styles and camera: `cips3d video/multiview/view --styles` render it, and the Python API reads it
with cips3d.inference.inversion.load_inversion), losses.json and, with --video, orbit.mp4 (orbit.gif
without an H.264 encoder or at an odd size): the photo's object seen from other yaws.
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "invert",
        help="fit a model's styles and camera to a photo (GAN inversion)",
        description="Optimise the styles (and the camera) under which the model renders the image, "
        "starting from the centre of its W space, then render the result from other views.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(p)
    g = p.add_argument_group("inversion")
    g.add_argument(
        "--image",
        required=True,
        help="the photo (centre-cropped to a square and resized), or a folder: each image in it goes to "
        "OUTDIR/<name>/",
    )
    g.add_argument("--size", type=image_side, default=64, help="render and compare at this side (default 64)")
    g.add_argument("--steps", type=positive_int, default=200, help="optimisation steps (default 200)")
    g.add_argument("--lr", type=finite_float, default=InversionConfig.lr, help="peak step of the styles")
    g.add_argument(
        "--camera-lr", type=finite_float, default=InversionConfig.camera_lr, help="peak step of the angles"
    )
    g.add_argument("--yaw", type=angle, help="initial yaw, radians (default pi/2: frontal); given, the fit "
                   "starts there instead of searching")  # fmt: skip
    g.add_argument("--pitch", type=pitch_angle,
                   help="initial pitch, radians from 0 to pi (default pi/2); as --yaw")  # fmt: skip
    g.add_argument("--fixed-camera", action="store_true", help="keep the camera at --yaw/--pitch")
    g.add_argument(
        "--camera-search",
        type=int,
        help="yaws tried across the pose prior before optimising (about half as many pitches; 0: start "
        f"at --yaw/--pitch; default {InversionConfig.camera_search}, or 0 when --yaw or --pitch is given; "
        "with both, --yaw/--pitch is one of the cameras tried)",
    )
    g.add_argument(
        "--per-layer", action="store_true", help="one style per layer (W+: closer fits, less typical styles)"
    )
    g.add_argument(
        "--perceptual",
        type=finite_float,
        default=PERCEPTUAL_WEIGHT,
        help="weight of the perceptual distance on FID Inception features added to the pixel loss "
        "(default %(default)s; 0: pixels only, no Inception weights needed)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of the style noise (default 0)")
    add_precision_argument(p.add_argument_group("speed (the fit's renders and the outputs')"))
    o = p.add_argument_group("output")
    o.add_argument("--video", action="store_true", help="also render a yaw sweep of the result")
    o.add_argument(
        "--frames",
        type=frame_count,
        default=VIDEO_FRAMES,
        help=f"frames of the video (default {VIDEO_FRAMES})",
    )
    o.add_argument(
        "--fps",
        type=finite_float,
        default=DEFAULT_FPS,
        help=f"the video's frames per second (default {DEFAULT_FPS:g})",
    )
    o.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    o.add_argument("--outdir", default="outputs/invert", help="output folder (default outputs/invert)")
    add_overwrite_argument(o)
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def read_target(path: str | Path, size: int) -> torch.Tensor:
    """The photo as a [1, 3, size, size] target in [-1, 1]; one UserError for a missing or broken file."""
    try:
        data = Path(path).read_bytes()
        return image_to_target(photo_pixels(data, path, "invert", size))
    except FileNotFoundError:
        raise UserError(f"no image at {path}.") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise UserError(f"cannot read the image {path} ({unreadable_reason(err)}).") from None


def image_paths(path: str) -> tuple[list[Path], bool]:
    """The photos to invert, and whether `path` is a folder: the file itself, or the images directly
    inside the folder, sorted by name."""
    p = Path(path)
    if p.is_dir():
        found = sorted(f for f in p.iterdir() if f.is_file() and is_image_name(f.name))
        if not found:
            raise UserError(f"the folder {path} holds no images ({', '.join(IMAGE_EXTENSIONS)}).")
        stems: dict[str, Path] = {}
        for f in found:  # each photo's results go to a folder named after it
            if (other := stems.setdefault(f.stem, f)) is not f:
                raise UserError(f"{other.name} and {f.name} would both write to the folder {f.stem}/; "
                                "rename one of them.")  # fmt: skip
        return found, True
    if not p.exists():
        raise UserError(f"no image at {path}.")
    return [p], False


def run(args: argparse.Namespace) -> int:
    config = _config(args)
    paths, folder = image_paths(args.image)
    one = not folder
    writes = [name for name in OUTPUT_NAMES if args.video or not name.startswith("orbit.")]
    for path in paths:  # before any work: a photo or model file must not become an output
        where = Path(args.outdir) if one else Path(args.outdir) / path.stem
        if where.exists() and not where.is_dir():  # it failed after the photos before it were fitted
            raise UserError(f"{where} is a file, so the folder of {path.name}'s fit cannot be made there.")
        refuse_writing_over(where, OUTPUT_NAMES, path, args.checkpoint)
        refuse_earlier_outputs(where, writes, args.overwrite, also=OUTPUT_NAMES)
    if args.checkpoint and is_generator2d(args.checkpoint):  # said before any note on the photo
        raise UserError(f"{args.checkpoint} is a 2D CIPS model: cips3d invert2d fits photos with it.")
    first = read_target(paths[0], args.size) if one else None  # a single broken photo fails first
    device, G = rendering_generator(args)
    model = model_record(args)  # now: a run's newest snapshot may change while the photos are fitted
    perceptual = load_perceptual(device=device) if config.perceptual > 0 else None
    fitted, skipped = 0, []
    for i, path in enumerate(paths):
        try:
            target = first if one else read_target(path, args.size)
        except UserError as err:  # in a folder: leave the broken file out, say so, go on
            skipped.append(path.name)
            print(f"cips3d invert: skipped: {err}", file=sys.stderr)
            continue
        outdir = Path(args.outdir) if one else Path(args.outdir) / path.stem
        desc = "invert" if one else f"{path.name} ({i + 1}/{len(paths)})"
        result = _fit(G, target, config, perceptual, desc, args)
        _write(G, result, target, outdir, args, (path, config, model))
        fitted += 1
        print(
            f"{outdir}: {fit_summary(result.losses, 'invert')}, "
            f"yaw {result.yaw:.3f}, pitch {result.pitch:.3f} rad."
        )
    if not one:
        print(f"cips3d invert: {fitted} photo(s) fitted, {len(skipped)} skipped.")
    return 0 if fitted else 2


def _fit(G, target: torch.Tensor, config: InversionConfig, perceptual, desc: str, args) -> Inversion:
    """`invert` with a progress bar over the steps, rendering with the speed options given."""
    bar = tqdm(total=config.steps, unit="step", desc=desc, disable=args.quiet, dynamic_ncols=True)

    def on_step(step: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4g}")

    try:
        with target_scale_known():  # image_to_target mapped the photo's 8-bit pixels
            render = RenderConfig(**speed_options(args))  # invert sets the size and sampling
            return invert(G, target, config, render=render, on_step=on_step, perceptual=perceptual)
    finally:
        bar.close()


def _config(args: argparse.Namespace) -> InversionConfig:
    if not args.video:
        refuse_ignored({"--frames": given(args, "frames"), "--fps": given(args, "fps")}, "without --video")
    check_frame_rate(args.fps)
    if args.fixed_camera:
        changed = {"--camera-lr": given(args, "camera_lr"),
                   "--camera-search": args.camera_search not in (None, 0)}  # fmt: skip
        refuse_ignored(changed, "with --fixed-camera (the camera stays at --yaw/--pitch)")
    # --yaw/--pitch given: the fit starts there (the search tried them as one camera and overruled them)
    start_given = args.yaw is not None or args.pitch is not None
    search = args.camera_search
    if search is None:
        search = 0 if start_given else InversionConfig.camera_search
    yaw = K.YAW_MEAN if args.yaw is None else args.yaw
    pitch = K.PITCH_MEAN if args.pitch is None else args.pitch
    return InversionConfig(
        steps=args.steps, size=args.size, lr=args.lr, camera_lr=args.camera_lr,
        fit_camera=not args.fixed_camera, yaw=yaw, pitch=pitch, per_layer=args.per_layer,
        camera_search=search, perceptual=args.perceptual, seed=args.seed,
    )  # fmt: skip


OUTPUT_NAMES = ("target.png", "reconstruction.png", "styles.safetensors", "losses.json", "orbit.mp4",
                "orbit.gif")  # fmt: skip


def _write(
    G,
    result: Inversion,
    target: torch.Tensor,
    outdir: Path,
    args: argparse.Namespace,
    fitted: tuple[Path, InversionConfig, dict],
) -> None:
    """The outputs of one photo's fit; `fitted`: the photo, the fit's settings, the model record."""
    image, config, model = fitted
    render = RenderConfig(img_size=args.size, deterministic=True, fov=result.fov, **speed_options(args))
    camera = {"yaw": result.yaw, "pitch": result.pitch, "fov": result.fov}
    loss = result.losses[-1] if result.losses else None
    # The fit's settings as InversionConfig holds them (--perceptual, --per-layer, --seed, the search...)
    fit = {"image": str(image.resolve()), "steps": args.steps, "camera": camera, "final_loss": loss,
           "fit": dataclasses.asdict(config)}  # fmt: skip
    record = output_record("invert", args, model, render, G.device) | fit
    save_png(to_uint8(target[0]), outdir / "target.png", record | {"output": "the photo, as fitted"})
    panels = "photo | fit | its aux NeRF image | its depth"
    save_png(
        fit_panels(target, result.output, render), outdir / "reconstruction.png", record | {"output": panels}
    )
    source = {"image": str(image.resolve()), "model": model_name(args)}
    save_inversion(result, outdir / "styles.safetensors", extra=source)
    losses = json.dumps({"losses": result.losses}) + "\n"
    atomic_write(outdir / "losses.json", lambda tmp: Path(tmp).write_text(losses))
    if args.video:
        trajectory = make_trajectory("yaw", num_frames=args.frames, fov=result.fov)
        frames = video_frames(
            G,
            result.styles,
            trajectory,
            render,
            panels=("image", "depth"),
            progress=not args.quiet,
            desc="orbit",
        )
        orbit = record | {"output": "an orbit of the fit (image | depth)", "trajectory": "yaw",
                          "frames": args.frames, "fps": args.fps}  # fmt: skip
        note_gif_fallback("invert", [write_mp4_or_gif(frames, outdir / "orbit", fps=args.fps, record=orbit)])
