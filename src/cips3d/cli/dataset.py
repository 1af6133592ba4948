"""`cips3d dataset`: pack an image folder (or zip) into a StyleGAN2-ADA-layout training zip."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from cips3d.cli.common import (
    image_side,
    positive_int,
)
from cips3d.data.images import SkippedImagesWarning, UpscaledImagesWarning, enlarged_message, skipped_message
from cips3d.data.lfw import write_lfw_dataset
from cips3d.data.panorama import write_panorama_dataset
from cips3d.data.synth import cameras_path, write_synth_dataset
from cips3d.data.zip_tool import folder_to_zip
from cips3d.errors import UserError
from cips3d.words import counted

EXAMPLES = """examples:
  cips3d dataset ffhq-images/ ffhq256.zip --resolution 256
  cips3d dataset ffhq1024.zip ffhq64.zip --resolution 64 --quiet
  cips3d dataset photos/ cartoon256.zip --resolution 256 --strict
  cips3d dataset panoramas/ pano64.zip --resolution 64 --width 256 --whole      # for train2d --panorama
  cips3d dataset synth synth32.zip --count 5000 --resolution 32     # procedural 3-D scenes
  cips3d dataset lfw lfw32.zip --resolution 32                      # 100 real faces, no download
  cips3d dataset panorama pano.zip --height 32 --width 128          # procedural 360-degree panoramas

(A folder that is literally named synth, lfw or panorama is written ./synth, ./lfw or ./panorama.)
"""

SYNTH_EXAMPLES = """examples:
  cips3d dataset synth synth32.zip
  cips3d dataset synth synth64.zip --count 2000 --resolution 64 --seed 3
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "dataset",
        help="pack images into a training zip; `dataset synth`, `lfw` and `panorama` write built-in data",
        description="Pack the images of a folder (at any depth: png, jpg, jpeg, bmp, webp, tif, tiff) or "
        "of a zip into a zip in the StyleGAN2-ADA layout (00000/img00000000.png, dataset.json). Each image "
        "is converted to RGB (transparent pixels onto white), centre-cropped to a square (or to --width's "
        "aspect, or not at all with --whole) and resized with PIL LANCZOS. Unreadable files are skipped "
        "and counted. The zip appears only once complete.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_pack_arguments(p)
    p.set_defaults(run=run)


def add_pack_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of packing existing images; kept apart so a sibling (e.g. procedural data) can be added."""
    p.add_argument("source", help="folder of images (searched recursively) or a zip archive of images")
    p.add_argument("dest", help="the .zip to write")
    _add_force(p)
    p.add_argument(
        "--resolution",
        type=image_side,
        required=True,
        metavar="R",
        help="side of the written images in pixels",
    )
    p.add_argument(
        "--width", type=image_side, metavar="W", help="width of the written images, when not square"
    )
    p.add_argument(
        "--whole",
        action="store_true",
        help="resize whole, never crop (360-degree panoramas for train2d --panorama, whose ends meet)",
    )
    p.add_argument(
        "--strict", action="store_true", help="fail at the first unreadable file instead of skipping it"
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="threads decoding and resizing (default: up to 8, one per core)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_synth_parser(subparsers) -> None:
    """`cips3d dataset synth` (reached through `cli.main`, which routes `dataset synth ...` here)."""
    p = subparsers.add_parser(
        "dataset-synth",
        prog="cips3d dataset synth",
        help="",
        description="Render procedural 3-D scenes (a striped body with a nose, an ear on one side only, "
        "a tilted hat and a spot: mirror errors show) from cameras of the official FFHQ prior, "
        "deterministically from --seed, into a dataset zip, with the true camera of every image in "
        "<name>.cameras.json beside it.",
        epilog=SYNTH_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dest", help="the .zip to write")
    _add_force(p)
    p.add_argument("--count", type=positive_int, default=5000, help="images (default 5000)")
    p.add_argument("--resolution", type=image_side, default=32, help="side in pixels (default 32)")
    p.add_argument("--seed", type=int, default=0, help="seed of the scenes and cameras (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_synth)


def add_lfw_parser(subparsers) -> None:
    """`cips3d dataset lfw`: the real-photo recipe."""
    p = subparsers.add_parser(
        "dataset-lfw",
        prog="cips3d dataset lfw",
        help="",
        description="Write the 100 LFW faces bundled with scikit-image (grey 25x25 crops, LANCZOS-"
        "upscaled, as RGB) as a dataset zip: real photos without a download.",
    )
    p.add_argument("dest", help="the .zip to write")
    _add_force(p)
    p.add_argument("--resolution", type=image_side, default=32, help="side in pixels (default 32)")
    p.add_argument(
        "--quiet",
        action="store_true",
        help="accepted as every dataset command takes it (no bar for 100 faces)",
    )
    p.set_defaults(run=run_lfw)


def add_panorama_parser(subparsers) -> None:
    """`cips3d dataset panorama`: training data for `cips3d train2d --panorama`."""
    p = subparsers.add_parser(
        "dataset-panorama",
        prog="cips3d dataset panorama",
        help="",
        description="Render procedural 360-degree landscape panoramas (sky, sun, two mountain ridges, "
        "foreground) whose left and right edges meet, deterministically from --seed, into a dataset "
        "zip: data for `cips3d train2d --panorama`.",
    )
    p.add_argument("dest", help="the .zip to write")
    _add_force(p)
    p.add_argument("--count", type=positive_int, default=2000, help="images (default 2000)")
    p.add_argument("--height", type=image_side, default=32, help="height in pixels (default 32)")
    p.add_argument("--width", type=image_side, default=128, help="width: the whole turn (default 128)")
    p.add_argument("--seed", type=int, default=0, help="seed of the landscapes (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_panorama)


def _add_force(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="replace DEST when it exists")


def _refuse_replacing(args: argparse.Namespace) -> None:
    """An existing DEST is replaced only when asked: it may be the zip a run trains on (which could then
    never be resumed), or no dataset at all (every command replaced even a notes.zip, exit 0)."""
    dest = Path(args.dest)
    source = getattr(args, "source", None)  # packing: DEST the source itself is said by the packer
    if source is not None and Path(source).resolve() == dest.resolve():
        return
    taken = dest.is_file() or (dest.is_symlink() and not dest.exists())  # a folder: said by the writer
    if dest.suffix.lower() == ".zip" and taken and not args.force:
        raise UserError(f"{dest} already exists; give --force to replace it, or another name.")


def _drop_stale_cameras(dest: str) -> None:
    """After writing a dataset that is not synth's over one that was: its cameras file would say the new
    images are synth's (`make demo` and the metrics read cameras from it)."""
    stale = cameras_path(dest)
    if stale.is_file():
        stale.unlink()
        print(f"cips3d: note: removed {stale}, the cameras of the synth images {dest} held before.",
              file=sys.stderr)  # fmt: skip


def _note_a_folder_of_that_name(kind: str) -> None:
    """`cips3d dataset synth DEST` builds the built-in set even when a folder `synth` is here: say how
    to pack that folder instead, since the user may have meant it."""
    if Path(kind).is_dir():
        print(f"cips3d: note: this builds the built-in {kind} dataset; to pack the folder ./{kind} here, "
              f"write `cips3d dataset ./{kind} DEST`.", file=sys.stderr)  # fmt: skip


def run_panorama(args: argparse.Namespace) -> int:
    _note_a_folder_of_that_name("panorama")
    _refuse_replacing(args)
    stats = write_panorama_dataset(
        args.dest, args.count, args.height, args.width, args.seed, progress=not args.quiet
    )
    _drop_stale_cameras(args.dest)
    print(f"wrote {counted(stats.count, 'panorama')} of {stats.width}x{stats.height} to {stats.dest}")
    return 0


def run_synth(args: argparse.Namespace) -> int:
    _note_a_folder_of_that_name("synth")
    _refuse_replacing(args)
    stats = write_synth_dataset(args.dest, args.count, args.resolution, args.seed, progress=not args.quiet)
    print(f"wrote {counted(stats.count, 'image')} of {stats.resolution}x{stats.resolution} to {stats.dest}")
    print(f"cameras in {stats.cameras}")
    return 0


def run_lfw(args: argparse.Namespace) -> int:
    _note_a_folder_of_that_name("lfw")
    _refuse_replacing(args)
    count = write_lfw_dataset(args.dest, args.resolution)
    _drop_stale_cameras(args.dest)
    print(f"wrote {counted(count, 'face')} of {args.resolution}x{args.resolution} to {args.dest}")
    return 0


def run(args: argparse.Namespace) -> int:
    """The command's entry point: today only packing images (see `add_pack_arguments`)."""
    return run_pack(args)


def run_pack(args: argparse.Namespace) -> int:
    """Pack `args.source` into `args.dest`; unreadable files and enlarged images are one line each."""
    _refuse_replacing(args)
    # The library warns through `warnings`; here the same facts are printed as plain lines instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedImagesWarning)
        warnings.simplefilter("ignore", UpscaledImagesWarning)
        stats = folder_to_zip(
            args.source,
            args.dest,
            args.resolution,
            strict=args.strict,
            progress=not args.quiet,
            workers=args.workers,
            width=args.width,
            whole=args.whole,
        )
    _drop_stale_cameras(args.dest)
    if stats.skipped:
        total = stats.num_written + stats.num_skipped
        print(f"cips3d: warning: {skipped_message(stats.skipped, total)}.", file=sys.stderr)
    enlarged = enlarged_message(args.source, stats.smallest_side, stats.resolution, stats.width)
    if enlarged:
        print(f"cips3d: warning: {enlarged}.", file=sys.stderr)
    size = f"{stats.width or stats.resolution}x{stats.resolution}"
    print(f"wrote {counted(stats.num_written, 'image')} of {size} to {stats.dest}")
    return 0
