"""`cips3d info`: what a checkpoint, model folder, training run or image dataset is and what it holds."""

from __future__ import annotations

import argparse
import json
import math

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
        "styles `cips3d invert` or `invert2d` fitted, a folder or zip of images (a dataset), or an image or "
        "video a cips3d command wrote (how it was made, from the record in it). Only tensors are read; no "
        "code is unpickled.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", help="a file or folder")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    lines = describe(args.path)
    if args.json:
        print(json.dumps(_strict_json(dict(lines)), indent=2, allow_nan=False))
        return 0
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        print(f"{label:<{width}}  {_words(value)}")
    return 0


def _strict_json(value: object) -> object:
    """`value` with non-finite numbers (a diverged loss, a hand-edited record) as the strings "nan",
    "inf" and "-inf": JSON has no such numbers, and Python's NaN token breaks strict parsers."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_strict_json(item) for item in value]
    return value


def _words(value: object, counted: bool = True) -> str:
    """A value of `describe` as text: counts with thousands separators, other numbers to six digits,
    a render's recorded settings (lists, settings by name) written out, their integers (seeds, sizes)
    as they are (1,000, 2,000 read as four numbers)."""
    if isinstance(value, bool) or value is None:
        return "none" if value is None else str(value).lower()
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return f"{value:,}" if counted else str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return ", ".join(f"{key} {_words(item, False)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_words(item, False) for item in value)
    return str(value)
