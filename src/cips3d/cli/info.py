"""`cips3d info`: what a checkpoint, model folder, training run or image dataset is and what it holds."""

from __future__ import annotations

import argparse
import json

from cips3d.io.inspect import describe

EXAMPLES = """examples:
  cips3d info runs/tiny                # a training run: step, stage, best snapshot, last scores
  cips3d info G_ema.pth                # an official CIPS-3D generator: which preset it fits
  cips3d info churches.pt              # an official 2D CIPS checkpoint: architecture, what it holds
  cips3d info ffhq256.zip               # a dataset: how many images, the first one's size
  cips3d info outputs/invert           # fitted styles: the camera found, the model and photo fitted
  cips3d info ffhq-cips3d --json
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "info",
        help="say what a checkpoint, model folder, training run or image dataset is",
        description="Describe a cips3d model folder or training run (3D or 2D), an official CIPS-3D "
        "generator or discriminator .pth (and which preset it fits), an official 2D CIPS checkpoint, the "
        "styles `cips3d invert` or `invert2d` fitted, or a folder or zip of images (a dataset). Only "
        "tensors are read; no code is unpickled.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", help="a file or folder")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    lines = describe(args.path)
    if args.json:
        print(json.dumps(dict(lines), indent=2))
        return 0
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        print(f"{label:<{width}}  {_words(value)}")
    return 0


def _words(value: str | int | float) -> str:
    """A value of `describe` as text: counts with thousands separators, scores to six digits."""
    if isinstance(value, (bool, str)):
        return str(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:.6g}"
