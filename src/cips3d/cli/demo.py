"""`cips3d demo`: build the synthetic data, train the tiny model for a while, show what it learned."""

from __future__ import annotations

import argparse

from cips3d.cli.common import resolve_device
from cips3d.demo import run_demo
from cips3d.errors import UserError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="train the tiny model on built-in 3-D data and show what it learned",
        description="Build (once) the procedural multi-view dataset, score the untrained tiny generator, "
        "train it for --minutes, score it again, and write samples, the aux NeRF views and depth, a "
        "turntable video, a metrics table and the inversion of a held-out object. This is what `make demo` "
        "runs.",
    )
    p.add_argument("--outdir", default="outputs/demo", help="output folder (default outputs/demo)")
    p.add_argument("--minutes", type=float, default=10.0, help="training time (default 10)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.minutes > 0:
        raise UserError(f"--minutes must be positive, got {args.minutes}.")
    result = run_demo(args.outdir, args.minutes, str(resolve_device(args.device)), progress=not args.quiet)
    print()
    print(open(result.files["metrics.md"]).read().rstrip())
    print(f"\nthe demo is in {result.outdir}/:")
    for name, path in result.files.items():
        print(f"  {name:<16} {path}")
    run_dir = result.outdir / "run"
    print(f"  {'training run':<16} {run_dir} (tensorboard --logdir {run_dir / 'logs'})")
    return 0
