"""`cips3d train2d`: train the 2D CIPS generator on an image folder or zip (spec 8.2)."""

from __future__ import annotations

import argparse

from cips3d.cli.common import add_fid_arguments, check_fid_arguments, positive_int, resolve_device
from cips3d.cli.train import process_device
from cips3d.config_2d import CIPS2D_PRESETS
from cips3d.errors import UserError
from cips3d.io.checkpoint2d import load_models2d
from cips3d.training.distributed import join, leave, world_from_environment
from cips3d.training.trainer2d import Train2DConfig, Trainer2D, load_run2d

EXAMPLES = """examples:
  cips3d train2d --data faces/ --outdir runs/cips2d --max-steps 2000           # tiny, whole images
  cips3d train2d --data faces/ --outdir runs/cips2d --max-steps 4000 --resume  # on, with the same flags
  cips3d train2d --data ffhq.zip --preset cips-256 --patch 64 --device cuda    # CIPS's FFHQ setting
  cips3d dataset panorama pano.zip && cips3d train2d --data pano.zip --outdir runs/pano --panorama \
      --width 128 --patch 16 --max-steps 4000                                  # 360-degree panoramas
  cips3d train2d --data churches/ --outdir runs/mine --init churches.pt --patch 64 --device cuda  # fine-tune
  torchrun --nproc_per_node 8 -m cips3d train2d --data ffhq.zip --preset cips-256 --patch 64 --device cuda
"""
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train2d",
        help="train the 2D CIPS generator (multi-scale patches, StyleGAN2 losses)",
        description="Train 2D CIPS (the generator CIPS-3D's INR comes from) on multi-scale patches with "
        "StyleGAN2's discriminator, non-saturating losses, lazy R1 and an EMA generator, writing "
        "snapshots that resume exactly, each with a preview grid.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, help="image folder or dataset zip")
    p.add_argument("--outdir", required=True, help="run folder (snapshots/, logs/)")
    p.add_argument("--preset", choices=sorted(CIPS2D_PRESETS),
                   help="generator; its size is the training size (default cips-tiny, 32 px)")  # fmt: skip
    p.add_argument(
        "--init",
        help="fine-tune: start G from this 2D model (a train2d run, model folder or official CIPS .pt); "
        "its size, width and coordinates decide the training images",
    )
    p.add_argument(
        "--patch", type=positive_int, help="patch side (the size over a power of two); default: whole"
    )
    p.add_argument(
        "--panorama",
        action="store_true",
        help="the images are 360-degree panoramas: cylinder coordinates, patches across the seam",
    )
    p.add_argument(
        "--width",
        type=positive_int,
        help="width of the training images when not square (a panorama's whole turn); default: the size",
    )
    p.add_argument("--batch-size", type=positive_int, default=4)
    p.add_argument("--d-coords", action="store_true", help="the discriminator also reads the coordinate maps")
    p.add_argument(
        "--d-max-channels",
        type=positive_int,
        help="cap on the discriminator's widths (default: the preset's, cips-tiny 64, else 512; with --init, "
        "that of the source's discriminator)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--xflip", action="store_true", help="add mirrored copies of the images")
    p.add_argument("--snapshot-every", type=positive_int, default=500)
    p.add_argument("--keep", type=positive_int, default=3, help="snapshots to keep (default 3)")
    p.add_argument(
        "--max-steps", type=positive_int, required=True, help="iterations in all, resumes included"
    )
    p.add_argument("--minutes", type=float, help="stop after this much wall time (snapshot)")
    p.add_argument("--resume", action="store_true", help="continue the run in --outdir exactly")
    p.add_argument("--device", default="auto")
    add_fid_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _generator(args: argparse.Namespace) -> dict:
    """The config's generator fields and the discriminator's width cap: a preset, or (--init) the model
    to start from, whose config a resumed run reads from its own snapshot."""
    if not args.init:
        return {"generator": args.preset or "cips-tiny", "d_max_channels": args.d_max_channels}
    if args.preset or args.panorama or args.width:
        raise UserError("--init brings its own generator: leave out --preset, --panorama and --width.")
    if args.resume:
        run = load_run2d(args.outdir, training_state=False)[1]
        model, source_cap = run.model, run.d_max_channels
    else:
        models = load_models2d(args.init)
        model = models.G.config.to_dict()
        source_cap = models.D.config.max_channels if models.D is not None else None
    # The discriminator keeps the source's widths unless told otherwise, so that it can be taken too.
    cap = args.d_max_channels or source_cap
    return {"generator": "init", "init": str(args.init), "model": model, "d_max_channels": cap}


def run(args: argparse.Namespace) -> int:
    if args.minutes is not None and not args.minutes > 0:
        raise UserError(f"--minutes must be positive, got {args.minutes}.")
    config = Train2DConfig(
        patch=args.patch, panorama=args.panorama, width=args.width, batch_size=args.batch_size,
        seed=args.seed, xflip=args.xflip, d_reads_coordinates=args.d_coords,
        snapshot_every=args.snapshot_every, keep_snapshots=args.keep,
        **_generator(args),
    )  # fmt: skip
    check_fid_arguments(args)
    world = world_from_environment()
    device = process_device(resolve_device(args.device), world, args.device)
    join(world, device)
    try:
        trainer = Trainer2D(config, args.outdir, args.data, device, args.resume, not args.quiet, world,
                            fid_images=args.fid or 0, inception=args.inception)  # fmt: skip
        if args.init and not args.resume and world.is_main:
            print(f"cips3d train2d: fine-tuning, {trainer.started_from}.")
        try:
            path = trainer.run(args.max_steps, args.minutes)
        except KeyboardInterrupt:
            if world.is_main:
                print(f"cips3d train2d: interrupted at step {trainer.state.global_step}; snapshot written.")
            return EXIT_INTERRUPTED
    finally:
        leave(world)
    if world.is_main:
        print(f"{path}: step {trainer.state.global_step}, preview {path / 'preview.png'}.")
    return 0
