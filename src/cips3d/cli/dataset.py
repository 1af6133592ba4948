"""`cips3d dataset`: pack an image folder (or zip) into a StyleGAN2-ADA-layout training zip."""

from __future__ import annotations

import argparse
import sys
import warnings

from cips3d.cli.common import positive_int
from cips3d.data.images import SkippedImagesWarning
from cips3d.data.zip_tool import folder_to_zip

EXAMPLES = """examples:
  cips3d dataset ffhq-images/ ffhq256.zip --resolution 256
  cips3d dataset ffhq1024.zip ffhq64.zip --resolution 64 --quiet
  cips3d dataset photos/ cartoon256.zip --resolution 256 --strict
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "dataset",
        help="pack images into a training zip at one resolution",
        description="Pack the images of a folder (at any depth: png, jpg, jpeg, bmp, webp, tif, tiff) or "
        "of a zip into a zip in the StyleGAN2-ADA layout (00000/img00000000.png, dataset.json). Each image "
        "is converted to RGB, centre-cropped to a square and resized with PIL LANCZOS. Unreadable files are "
        "skipped and counted. The zip appears only once complete.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_pack_arguments(p)
    p.set_defaults(run=run)


def add_pack_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of packing existing images; kept apart so a sibling (e.g. procedural data) can be added."""
    p.add_argument("source", help="folder of images (searched recursively) or a zip archive of images")
    p.add_argument("dest", help="the .zip to write (replaced if it exists)")
    p.add_argument(
        "--resolution",
        type=positive_int,
        required=True,
        metavar="R",
        help="side of the written images in pixels",
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


def run(args: argparse.Namespace) -> int:
    """The command's entry point: today only packing images (see `add_pack_arguments`)."""
    return run_pack(args)


def run_pack(args: argparse.Namespace) -> int:
    """Pack `args.source` into `args.dest`; unreadable files are reported in one line on stderr."""
    # The library warns through `warnings`; here the same fact is printed as one plain line instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedImagesWarning)
        stats = folder_to_zip(
            args.source,
            args.dest,
            args.resolution,
            strict=args.strict,
            progress=not args.quiet,
            workers=args.workers,
        )
    if stats.num_skipped:
        total = stats.num_written + stats.num_skipped
        print(
            f"cips3d dataset: warning: skipped {stats.num_skipped} of {total} images that could not be "
            f"read (first: {stats.first_skipped}).",
            file=sys.stderr,
        )
    res = stats.resolution
    print(f"wrote {stats.num_written} images of {res}x{res} to {stats.dest}")
    return 0
