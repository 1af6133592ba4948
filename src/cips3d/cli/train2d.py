"""`cips3d train2d`: train the 2D CIPS generator on an image folder or zip (spec 8.2)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from pathlib import Path
from typing import Any

import torch

from cips3d.cli.common import add_fid_arguments, check_fid_arguments, image_side, positive_int, resolve_device
from cips3d.cli.entry import EXIT_INTERRUPTED
from cips3d.cli.resuming import (
    RESUME_HELP,
    conflict,
    keep_matmul_route,
    keep_run_options,
    refuse_other_settings,
    resume_after_restart,
    resumed_run_folder,
)
from cips3d.cli.train import EXIT_STOPPED, process_device
from cips3d.config_2d import CIPS2D_PRESETS
from cips3d.errors import UserError
from cips3d.io.checkpoint2d import load_models2d
from cips3d.training.distributed import (
    World,
    job_facts,
    lost_peer,
    process_group,
    start_together,
    world_from_environment,
)
from cips3d.training.snapshot import resume_data
from cips3d.training.trainer import TrainingStopped
from cips3d.training.trainer2d import RESUMABLE, Train2DConfig, Trainer2D, load_run2d

# A new run's settings when their flags are left out (a resumed run keeps its own).
DEFAULTS = {f.name: f.default for f in dataclasses.fields(Train2DConfig)}

EXAMPLES = r"""examples:
  cips3d train2d --data faces/ --outdir runs/cips2d --max-steps 2000           # tiny, whole images
  cips3d train2d --resume runs/cips2d --max-steps 4000                         # on, exactly
  cips3d train2d --data ffhq.zip --outdir runs/ffhq --preset cips-256 --patch 64 --max-steps 800000 \
      --device cuda                                                            # FFHQ at 256 px, long
  cips3d dataset panorama pano.zip && cips3d train2d --data pano.zip --outdir runs/pano --panorama \
      --width 128 --patch 16 --max-steps 4000                                  # 360-degree panoramas
  cips3d train2d --data churches/ --outdir runs/mine --init churches.pt --patch 64 --max-steps 20000 \
      --device cuda                                                            # fine-tune
  torchrun --nproc_per_node 8 -m cips3d train2d --data ffhq.zip --outdir runs/ffhq --preset cips-256 \
      --patch 64 --max-steps 800000 --device cuda

Ctrl-C (or SIGTERM) finishes the current iteration, writes a snapshot and exits (code 130); --resume
continues from it. A second Ctrl-C stops at once, leaving the snapshots already written intact.
"""


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
    p.add_argument("--data", help="image folder or dataset zip (for --resume: defaults to the run's)")
    p.add_argument("--outdir", help="run folder (snapshots/, logs/)")
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
        type=image_side,
        help="width of the training images when not square (a panorama's whole turn); default: the size",
    )
    p.add_argument("--batch-size", type=positive_int, help=f"default {DEFAULTS['batch_size']}")
    p.add_argument("--d-coords", action="store_true", help="the discriminator also reads the coordinate maps")
    p.add_argument(
        "--d-max-channels",
        type=positive_int,
        help="cap on the discriminator's widths (default: the preset's, cips-tiny 64, else 512; with --init, "
        "that of the source's discriminator)",
    )
    p.add_argument("--seed", type=int, help=f"default {DEFAULTS['seed']}")
    p.add_argument("--xflip", action="store_true", help="add mirrored copies of the images")
    p.add_argument("--snapshot-every", type=positive_int, help=f"default {DEFAULTS['snapshot_every']}")
    keep = DEFAULTS["keep_snapshots"]
    p.add_argument("--keep", type=positive_int, help=f"snapshots to keep (default {keep})")
    p.add_argument(
        "--max-steps",
        type=positive_int,
        help="iterations in all, resumes included (give it, --minutes or both)",
    )
    p.add_argument("--minutes", type=float,
                   help="stop with a snapshot after this many minutes of training in this invocation (a "
                        "--resume does not carry it over: give it again)")  # fmt: skip
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        metavar="RUN",
        help=RESUME_HELP.format(changeable="--snapshot-every and --keep"),
    )
    p.add_argument("--device", default="auto")
    add_fid_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


# Flags whose config field has another name; the others are the field with dashes.
FLAG_OF_FIELD = {"generator": "--preset", "d_reads_coordinates": "--d-coords", "keep_snapshots": "--keep"}


def _flag(field: str) -> str:
    return FLAG_OF_FIELD.get(field, "--" + field.replace("_", "-"))


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The run settings on the command line, by config field; flags left out are absent."""
    switches = {"panorama": args.panorama, "xflip": args.xflip, "d_reads_coordinates": args.d_coords}
    values = {
        "generator": args.preset, "init": args.init, "patch": args.patch, "width": args.width,
        "batch_size": args.batch_size, "d_max_channels": args.d_max_channels, "seed": args.seed,
        "snapshot_every": args.snapshot_every, "keep_snapshots": args.keep,
    }  # fmt: skip
    given = {k: v for k, v in values.items() if v is not None}
    return given | {k: True for k, on in switches.items() if on}


def _new_config(args: argparse.Namespace) -> Train2DConfig:
    """A new run's config: the flags given, the defaults for the others; with --init, the generator is
    the source model's and the discriminator's width cap follows the source's unless told otherwise."""
    given = _given(args)
    if not args.init:
        return Train2DConfig(**given)
    if args.preset or args.panorama or args.width:
        raise UserError("--init brings its own generator: leave out --preset, --panorama and --width.")
    models = load_models2d(args.init)
    source_cap = models.D.config.max_channels if models.D is not None else None
    model = models.G.config.to_dict()
    cap = args.d_max_channels or source_cap
    source = str(Path(args.init).resolve())  # recorded as the data's path is: a resume may run elsewhere
    return Train2DConfig(
        **given | {"generator": "init", "init": source, "model": model, "d_max_channels": cap}
    )


def _resumed_config(run_dir: Path, args: argparse.Namespace) -> Train2DConfig:
    """The run's own config, with the bookkeeping flags given; other flags must agree with the run."""
    config = load_run2d(run_dir, training_state=False)[1]
    given = _given(args)
    # What a default stands for, so that giving that value is no change.
    own = config.to_dict() | {
        "d_max_channels": config.discriminator().max_channels,
        "width": config.generator_config().grid_width,
    }
    if config.init is not None:
        own["generator"] = f"none, it fine-tunes {config.init}"
    conflicts = [
        conflict(_flag(name), value, own[name])
        for name, value in given.items()
        if name not in RESUMABLE and value != own[name] and not _same_file(name, value, own[name])
    ]
    refuse_other_settings(run_dir, conflicts)
    return dataclasses.replace(config, **{k: v for k, v in given.items() if k in RESUMABLE})


def _same_file(name: str, given: Any, own: Any) -> bool:
    return name == "init" and own is not None and Path(given).resolve() == Path(own).resolve()


def _run_folder(args: argparse.Namespace) -> Path:
    """The run's folder: --outdir, or the run --resume names (which must be its newest snapshot)."""
    if args.resume is not None:
        return resumed_run_folder(args.resume, args.outdir)
    if not args.outdir:
        raise UserError("give --outdir (the run folder).")
    return Path(args.outdir)


def run(args: argparse.Namespace) -> int:
    world = world_from_environment()
    device = process_device(resolve_device(args.device), world, args.device)
    resume_after_restart(args, Path(args.outdir) if args.outdir else None, "train2d", world.is_main)
    with process_group(world, device), contextlib.ExitStack() as held:
        trainer, kept = _start_together(args, world, device, held)
        run_dir = trainer.run_dir
        if world.is_main:
            _start_notes(args, trainer, kept)
        step = trainer.state.global_step
        if args.max_steps is not None and step >= args.max_steps:  # nothing left to do: touch no file
            if world.is_main:
                print(f"{run_dir}: already at step {step} (--max-steps {args.max_steps}); nothing to do.")
            return 0
        if world.distributed and world.is_main:
            batch = trainer.config.batch_size
            print(
                f"cips3d train2d: {world.world_size} processes, {world.world_size} x {batch} images per step."
            )
        try:
            path = trainer.run(args.max_steps, args.minutes)
        except TrainingStopped as err:
            if world.is_main:
                print(f"cips3d train2d: stopped: {err}")
            return EXIT_STOPPED
        except RuntimeError as err:
            said = lost_peer(err, world, run_dir, "train2d")
            if said is None:
                raise
            raise said from err
        if trainer.stopped_by_signal:
            if world.is_main:
                step = trainer.state.global_step
                print(f"cips3d train2d: stopped at step {step}; snapshot {path} written; "
                      f"`cips3d train2d --resume {run_dir}` continues.")  # fmt: skip
            return EXIT_INTERRUPTED
    if world.is_main:
        if trainer.reached_time_limit:  # said as train says it
            print(f"cips3d train2d: stopped: reached {args.minutes:g} minutes; `cips3d train2d --resume "
                  f"{run_dir} --minutes {args.minutes:g}` (or --max-steps N) continues.")  # fmt: skip
        print(f"{path}: step {trainer.state.global_step}, preview {path / 'preview.png'}.")
    return 0


def _start_together(
    args: argparse.Namespace, world: World, device: torch.device, held: contextlib.ExitStack
) -> tuple[Trainer2D, list[str]]:
    """The trainer of this process, started by every process together (`start_together`: every mistake
    said here is said once, by rank 0), and the run options a resume kept (as flags, for the note)."""
    resume = args.resume is not None

    def start() -> tuple[Trainer2D, list[str]]:
        if args.minutes is not None and not args.minutes > 0:
            raise UserError(f"--minutes must be positive, got {args.minutes}.")
        run_dir = _run_folder(args)
        config = _resumed_config(run_dir, args) if resume else _new_config(args)
        # A resume goes on with the run's step limit and FID, as `train --resume` does.
        kept = keep_run_options(args, run_dir, ("max_steps", "fid", "inception")) if resume else []
        if resume:
            keep_matmul_route(run_dir, device, say=world.is_main)
        if args.max_steps is None and args.minutes is None:
            carried = " (a resume keeps the run's --max-steps, not its --minutes)" if resume else ""
            raise UserError(
                f"give --max-steps, --minutes or both: a 2D run trains until the first is reached{carried}."
            )
        data = resume_data(run_dir, args.data) if resume else args.data
        if data is None:
            raise UserError("give --data (an image folder or dataset zip).")
        check_fid_arguments(args)
        trainer = Trainer2D(config, run_dir, data, device, resume, not args.quiet, world,
                            fid_images=args.fid or 0, inception=args.inception)  # fmt: skip
        held.enter_context(trainer.folder_lock)  # taken at start, so a folder in use is said once
        return trainer, kept

    def facts(started: tuple[Trainer2D, list[str]]) -> dict:
        trainer = started[0]
        limits = (args.max_steps, args.minutes, args.fid)  # a resume's, as keep_run_options filled them in
        return job_facts(
            trainer.config.to_dict(), trainer.state.data_fingerprint, trainer.state.global_step, limits
        )

    return start_together(world, start, facts)


def _start_notes(args: argparse.Namespace, trainer: Trainer2D, kept: list[str]) -> None:
    """What the main process says before the first step: a fine-tune's source, the resume, kept options."""
    if args.init and args.resume is None:
        print(f"cips3d train2d: fine-tuning, {trainer.started_from}.")
    if trainer.resume_note:
        print(f"cips3d train2d: note: {trainer.resume_note}")
    if kept:
        print(f"cips3d train2d: note: going on with the run's {', '.join(kept)} (give a flag to change "
              "it; --fid 0 turns FID off).")  # fmt: skip
