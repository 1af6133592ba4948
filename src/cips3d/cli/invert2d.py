"""`cips3d invert2d`: find the style under which a 2D CIPS run renders a photo, then render it larger."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import UnidentifiedImageError
from safetensors.torch import save_file
from tqdm import tqdm

from cips3d.cli.common import (
    CHECKPOINT_HELP_2D,
    add_overwrite_argument,
    finite_float,
    fit_summary,
    photo_pixels,
    positive_int,
    refuse_earlier_outputs,
    refuse_writing_over,
    resolve_device,
)
from cips3d.config import MAX_IMG_SIZE
from cips3d.data.images import unreadable_reason
from cips3d.errors import UserError
from cips3d.inference.inversion import image_to_target, target_scale_known
from cips3d.inference.inversion2d import Inversion2DConfig, invert2d
from cips3d.io.checkpoint2d import load_generator2d
from cips3d.io.files import atomic_write
from cips3d.io.images import save_png, to_uint8
from cips3d.models.generator2d import MAX_COORDINATE, Generator2D

EXAMPLES = """examples:
  cips3d invert2d --checkpoint runs/cips2d --image face.png --outdir out/face
  cips3d invert2d --checkpoint runs/cips2d --image face.png --per-layer --steps 600 --scale 4 --extent 1.5
  cips3d invert2d --checkpoint runs/pano --image beach.jpg --turns 2        # a panorama run: round twice

Writes target.png (the photo as the model sees it), reconstruction.png (target | fit), larger.png (the
fit rendered --scale times denser and --extent times wider: detail and a continuation the photo does
not have), w.safetensors (the style: [1, D], or [1, layers, D] with --per-layer) and losses.json.
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "invert2d",
        help="fit a 2D CIPS model's style to a photo, then render it larger and beyond its frame",
        description="Optimise the style w under which a 2D model (a train2d run's G_ema, a model folder "
        "or an official file) renders the image (from the mean style, Adam on a three-scale pixel loss "
        "with the StyleGAN2 projector's schedule), then render it on a denser and wider grid.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help=CHECKPOINT_HELP_2D)
    p.add_argument(
        "--image",
        required=True,
        help="the photo (resized; a flat model's cropped to its aspect, a panorama's must have it)",
    )
    p.add_argument("--steps", type=positive_int, default=Inversion2DConfig.steps, help="default %(default)s")
    p.add_argument("--lr", type=finite_float, default=Inversion2DConfig.lr, help="peak step of w")
    p.add_argument("--per-layer", action="store_true", help="one w per layer (W+: closer, less typical)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise on w (default 0)")
    p.add_argument("--scale", type=positive_int, default=2,
                   help="larger.png is the training size times this, over --extent (default 2)")  # fmt: skip
    p.add_argument("--extent", type=finite_float, default=1.25, help="larger.png's reach (default 1.25)")
    p.add_argument("--turns", type=finite_float, default=1.0, help="panorama runs: larger.png goes round")
    p.add_argument("--outdir", default="outputs/invert2d", help="output folder (default outputs/invert2d)")
    add_overwrite_argument(p)
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def read_target(path: str, G: Generator2D) -> torch.Tensor:
    """The photo as G's training images are read: [1, 3, size, grid_width] in [-1, 1]."""
    config = G.config
    try:
        data = Path(path).read_bytes()
        rgb = photo_pixels(data, path, "invert2d", config.size, config.grid_width, whole=config.panorama)
    except IsADirectoryError:
        raise UserError(f"{path} is a folder; invert2d fits one photo at a time.") from None
    except FileNotFoundError:
        raise UserError(f"no image file at {path}.") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise UserError(f"cannot read the image {path} ({unreadable_reason(err)}).") from None
    return image_to_target(rgb)


OUTPUT_NAMES = ("target.png", "reconstruction.png", "larger.png", "w.safetensors", "losses.json")


def run(args: argparse.Namespace) -> int:
    config = Inversion2DConfig(steps=args.steps, lr=args.lr, per_layer=args.per_layer, seed=args.seed)
    if not (0 < args.extent <= MAX_COORDINATE and 0 < args.turns <= MAX_COORDINATE):
        raise UserError(
            f"--extent and --turns must be positive and at most {MAX_COORDINATE:g}, got {args.extent:g}, "
            f"{args.turns:g}."
        )
    outdir = Path(args.outdir)
    refuse_writing_over(outdir, OUTPUT_NAMES, args.image, args.checkpoint)
    refuse_earlier_outputs(outdir, OUTPUT_NAMES, args.overwrite)
    G = load_generator2d(args.checkpoint, resolve_device(args.device))
    side = G.config.size * args.scale
    if side > MAX_IMG_SIZE:  # the grid's own limit said "render it in parts", which no flag does
        raise UserError(f"--scale {args.scale} makes larger.png {side:,} px a side (the model's "
                        f"{G.config.size} times {args.scale}), more than {MAX_IMG_SIZE:,}; give a smaller "
                        "--scale.")  # fmt: skip
    larger_grid = G.frame_grid(side, args.extent, args.turns)  # refuses bad turns now
    target = read_target(args.image, G)
    bar = tqdm(total=config.steps, unit="step", desc="invert2d", disable=args.quiet, dynamic_ncols=True)

    def on_step(step: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4g}")

    try:
        with target_scale_known():  # the photo's 8-bit pixels were mapped to [-1, 1] here
            result = invert2d(G, target, config, on_step)
    finally:
        bar.close()
    with torch.no_grad():
        larger = G.synthesis(result.w, larger_grid)
    save_png(to_uint8(target[0]), outdir / "target.png")
    fit = to_uint8(result.image.clamp(-1, 1))[0]
    save_png(np.concatenate([to_uint8(target[0]), fit], axis=1), outdir / "reconstruction.png")
    save_png(to_uint8(larger.clamp(-1, 1))[0], outdir / "larger.png")
    meta = {
        "model": str(Path(args.checkpoint).resolve()),  # as invert records it (`common.model_name`)
        "image": str(Path(args.image).resolve()),
        "per_layer": str(args.per_layer),
    }
    atomic_write(outdir / "w.safetensors", lambda tmp: save_file({"w": result.w.cpu()}, tmp, metadata=meta))
    losses = json.dumps({"losses": result.losses}) + "\n"
    atomic_write(outdir / "losses.json", lambda tmp: Path(tmp).write_text(losses))
    print(f"{outdir}: {fit_summary(result.losses, 'invert2d')}; larger.png is "
          f"{larger.shape[-1]}x{larger.shape[-2]}.")  # fmt: skip
    return 0
