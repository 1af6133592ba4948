"""`cips3d train`: train from scratch, fine-tune from weights, or resume a run exactly."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
from pathlib import Path

import torch

from cips3d.cli.common import (
    add_fid_arguments,
    check_fid_arguments,
    int_at_least,
    positive_int,
    resolve_device,
)
from cips3d.cli.entry import EXIT_INTERRUPTED  # also: Ctrl-C or SIGTERM stopped a run after a snapshot
from cips3d.cli.resuming import (
    RESUME_HELP,
    conflict,
    keep_matmul_route,
    keep_run_options,
    refuse_other_settings,
    resume_after_restart,
    resumed_run_folder,
)
from cips3d.cli.speed import warn_if_slow_precision
from cips3d.config_2d import is_2d_run_config
from cips3d.errors import UserError
from cips3d.training.config import TRAIN_PRESETS, TrainConfig, preset_name, train_preset
from cips3d.training.distributed import (
    World,
    job_facts,
    lost_peer,
    process_group,
    start_together,
    world_from_environment,
)
from cips3d.training.snapshot import snapshot_config, snapshot_name
from cips3d.training.trainer import Trainer, TrainingStopped, TrainOptions

EXAMPLES = """examples:
  cips3d train --data faces.zip --preset tiny --outdir runs/tiny
  cips3d train --resume runs/tiny                      # continue exactly where it stopped
  cips3d train --outdir runs/tiny --resume --minutes 30  # half an hour more (up to its --max-steps)
  cips3d train --data cartoons.zip --preset ffhq-finetune --init ffhq_official/ --outdir runs/cartoon
  cips3d train --data faces.zip --preset tiny --minutes 10 --outdir runs/quick
  cips3d train --data faces.zip --preset ffhq --device cuda --tf32    # TF32 tensor cores
  torchrun --nproc_per_node 8 -m cips3d train --data faces.zip --preset ffhq --outdir runs/ffhq
                                                       # 8 GPUs, batch_size images on each per step

Ctrl-C (or SIGTERM) finishes the current step, writes a snapshot and exits (code 130); --resume continues
from it. A second Ctrl-C stops at once, leaving the snapshots already written intact.
Under torchrun each process trains on --batch-size images per step (the official convention: the batch
is per GPU), gradients are averaged across processes, and rank 0 writes every file; the run folder and
the data must be reachable from every machine. A run resumes bit for bit on the same number of processes.
"""

RUN_OPTIONS = ("max_steps", "tf32", "fid", "inception")  # kept by a resume that leaves them out
EXIT_STOPPED = 3  # training stopped itself (non-finite losses); a snapshot of the last good state exists


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train or fine-tune a model, or resume a run",
        description="Train CIPS-3D through the stages of a preset (progressive resolution, aux "
        "discriminator, EMA, R1), writing snapshots that resume exactly, previews and TensorBoard logs.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", help="image folder or dataset zip (for --resume: defaults to the run's)")
    p.add_argument("--preset", choices=TRAIN_PRESETS, help="networks and curriculum (default tiny)")
    p.add_argument("--outdir", help="run folder (default runs/<preset>)")
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        metavar="RUN",
        help=RESUME_HELP.format(changeable="--snapshot-every, --preview-every and --keep"),
    )
    p.add_argument("--init", help="start from these weights: a snapshot, run, cips3d or official checkpoint")
    p.add_argument(
        "--batch-size", type=positive_int, help="override the batch size of every stage (per process)"
    )
    p.add_argument("--seed", type=int, help="seed of the run (default 1234)")
    p.add_argument("--snapshot-every", type=positive_int, help="steps between snapshots")
    p.add_argument("--preview-every", type=positive_int, help="steps between preview grids")
    p.add_argument("--keep", type=positive_int, help="snapshots to keep besides the best (default 3)")
    p.add_argument(
        "--max-steps",
        type=positive_int,
        help="stop after this many steps in total (snapshot); a resume keeps the run's unless given",
    )
    p.add_argument("--minutes", type=float,
                   help="stop with a snapshot after this many minutes of training in this invocation (a "
                        "--resume does not carry it over: give it again)")  # fmt: skip
    p.add_argument(
        "--device",
        default="auto",
        help="cpu, cuda, cuda:N or auto (default; under torchrun: cuda:LOCAL_RANK)",
    )
    p.add_argument(
        "--workers",
        type=_workers_arg,
        default="auto",
        help="data-loading worker processes, or auto (default: none on a CPU, where training needs every "
        "core; half the cores, at most 8, beside a GPU, so that decoding overlaps its steps)",
    )
    p.add_argument(
        "--tf32",
        action=argparse.BooleanOptionalAction,
        help="CUDA: float32 matrix products on TF32 tensor cores for the whole run (faster, ~1e-3 "
        "relative error per product; a resume keeps the run's setting unless given, to continue exactly). "
        "The discriminator's convolutions follow PyTorch's cuDNN switch, which allows TF32 by default",
    )
    add_fid_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _config(args: argparse.Namespace) -> TrainConfig:
    config = train_preset(args.preset or "tiny")
    overrides = {
        "seed": args.seed,
        "snapshot_every": args.snapshot_every,
        "preview_every": args.preview_every,
        "keep_snapshots": args.keep,
    }
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if args.batch_size:
        config = config.with_stages(
            tuple(dataclasses.replace(s, batch_size=args.batch_size) for s in config.stages)
        )
    return config


def _resume_conflicts(config: dict, args: argparse.Namespace) -> list[str]:
    """The run settings given with --resume that differ from the run's own, in words; equal ones pass."""
    if is_2d_run_config(config):
        return []  # Trainer.from_snapshot names the command that continues it
    run = TrainConfig.from_dict(config)
    conflicts = []
    if args.preset is not None and args.preset != (own := preset_name(run)):
        conflicts.append(conflict("--preset", args.preset, own or "a config of its own"))
    if args.seed is not None and args.seed != run.seed:
        conflicts.append(conflict("--seed", args.seed, run.seed))
    sizes = sorted({stage.batch_size for stage in run.stages})
    if args.batch_size is not None and sizes != [args.batch_size]:
        by_stage = ", ".join(str(stage.batch_size) for stage in run.stages)
        conflicts.append(conflict("--batch-size", args.batch_size, by_stage if len(sizes) > 1 else sizes[0]))
    return conflicts


def _trainer(args: argparse.Namespace, options: TrainOptions) -> Trainer:
    if args.resume is not None:
        if args.init:
            raise UserError("--init starts a new run from other weights, --resume continues one: give one.")
        run_dir = resumed_run_folder(args.resume, args.outdir)
        refuse_other_settings(run_dir, _resume_conflicts(snapshot_config(run_dir), args))
        changes = {"snapshot_every": args.snapshot_every, "preview_every": args.preview_every,
                   "keep_snapshots": args.keep}  # fmt: skip
        changes = {k: v for k, v in changes.items() if v is not None}
        return Trainer.from_snapshot(run_dir, args.data, options, **changes)
    if not args.data:
        raise UserError("give --data (an image folder or dataset zip), or --resume a run.")
    outdir = _new_run_folder(args)
    config = _config(args)
    if config.stages[0].freeze_nerf and not args.init:  # a random NeRF would stay frozen all run long
        raise UserError(f"the {args.preset} preset freezes the NeRF from its first step, so it fine-tunes a "
                        "trained model: give --init with that model's weights.")  # fmt: skip
    trainer = Trainer(config, outdir, args.data, options)
    if args.init:
        source = trainer.warm_start(args.init)
        if options.world.is_main:
            print(f"starting from {source}")
    return trainer


def _new_run_folder(args: argparse.Namespace) -> Path:
    return Path(args.outdir or f"runs/{args.preset or 'tiny'}")


def _workers_arg(text: str) -> int | str:
    """argparse type of --workers: 'auto' or an integer >= 0."""
    return "auto" if text == "auto" else int_at_least(text, 0)


def default_workers(
    device: torch.device, cpu_count: int | None = None, processes_per_machine: int = 1
) -> int:
    """Data-loading processes for `--workers auto`: none when the CPU trains (they would take its
    cores), half of this process's share of the cores (at most 8) beside a GPU, whose steps leave the
    CPU idle."""
    if device.type == "cpu":
        return 0
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return min(8, cores // processes_per_machine // 2)


def process_device(device: torch.device, world: World, asked: str) -> torch.device:
    """The device of this process: under torchrun, GPU `LOCAL_RANK` of its machine (one per process)."""
    if not world.distributed or device.type != "cuda":
        return device
    if asked not in ("auto", "cuda"):
        raise UserError(
            f"under torchrun each process trains on the GPU of its local rank; use --device cuda, "
            f"not {asked}."
        )
    if world.local_rank >= torch.cuda.device_count():
        raise UserError(
            f"process {world.local_rank} of this machine has no GPU of its own "
            f"({torch.cuda.device_count()} visible); start at most that many processes per machine."
        )
    return torch.device("cuda", world.local_rank)


def run(args: argparse.Namespace) -> int:
    world = world_from_environment()
    device = process_device(resolve_device(args.device), world, args.device)
    with process_group(world, device), contextlib.ExitStack() as held:
        return _train(args, world, device, held)


def _train(args: argparse.Namespace, world: World, device: torch.device, held: contextlib.ExitStack) -> int:
    """Train; `held` keeps the run folder's lock (taken at start, so a folder in use is said once)."""
    resume_after_restart(args, _new_run_folder(args), "train", world.is_main)
    trainer, kept = _start_together(args, world, device, held)
    if _already_done(args, trainer, kept, world):
        return 0
    if world.is_main:
        _start_notes(trainer, kept, world)
    try:
        state = trainer.run()
    except TrainingStopped as err:
        if world.is_main:
            print(f"cips3d train: stopped: {err}")
        return EXIT_STOPPED
    except RuntimeError as err:
        said = lost_peer(err, world, trainer.run_dir, "train")
        if said is None:
            raise
        raise said from err
    if trainer.stopped_by_signal:
        if world.is_main:
            print(f"cips3d train: stopped at step {state.global_step}; snapshot written, --resume "
                  f"{trainer.run_dir} continues.")  # fmt: skip
        return EXIT_INTERRUPTED
    if world.is_main:
        stage = trainer.config.stages[state.stage]
        newest = trainer.run_dir / "snapshots" / snapshot_name(state.global_step)
        previews = trainer.run_dir / "previews"
        print(
            f"{trainer.run_dir}: step {state.global_step}, stage {stage.name} "
            f"({state.stage_step}/{stage.steps}); snapshot {newest}, previews in {previews}."
        )
        _note_still_ema(trainer.config.ema_start, state.stage_step)
    return 0


def _start_together(
    args: argparse.Namespace, world: World, device: torch.device, held: contextlib.ExitStack
) -> tuple[Trainer, list[str]]:
    """The trainer of this process, started by every process together (`start_together`), and the run
    options a resume kept (as flags, for the note)."""
    if args.workers == "auto":
        workers = default_workers(device, processes_per_machine=world.local_world_size)
    else:
        workers = args.workers

    def start() -> tuple[Trainer, list[str]]:
        if args.minutes is not None and not args.minutes > 0:
            raise UserError(f"--minutes must be positive, got {args.minutes}.")
        kept = []
        if args.resume is not None:  # a resume goes on as the run was asked to: limit, FID, TF32
            run_dir = resumed_run_folder(args.resume, args.outdir)
            kept = keep_run_options(args, run_dir, RUN_OPTIONS)
            keep_matmul_route(run_dir, device, say=world.is_main)
        check_fid_arguments(args)
        options = TrainOptions(
            device=device, workers=workers, progress=not args.quiet and world.is_main,
            max_steps=args.max_steps, max_minutes=args.minutes, tf32=bool(args.tf32), world=world,
            fid_images=args.fid or 0, inception=args.inception,
        )  # fmt: skip
        if args.tf32 and world.is_main:
            warn_if_slow_precision(device, "tf32")
        trainer = _trainer(args, options)
        held.enter_context(trainer.folder_lock)
        if world.distributed:
            trainer.checked_dataset()  # every process's images, compared with rank 0's
        return trainer, kept

    def facts(started: tuple[Trainer, list[str]]) -> dict:
        trainer, o = started[0], started[0].options
        limits = (o.max_steps, o.max_minutes, o.fid_images)
        return job_facts(
            trainer.config.to_dict(), trainer.state.data_fingerprint, trainer.state.global_step, limits
        )

    return start_together(world, start, facts)


def _already_done(args: argparse.Namespace, trainer: Trainer, kept: list[str], world: World) -> bool:
    """Whether the run is at its --max-steps already (said, with whose limit it is)."""
    max_steps = trainer.options.max_steps  # a resume's is the run's unless given (keep_run_options)
    if max_steps is None or trainer.state.global_step < max_steps:
        return False
    if args.data:  # other images would be refused with steps to go: not said "nothing to do" here
        trainer.checked_dataset()
    if world.is_main:
        own_limit = f"--max-steps {max_steps}" in kept
        whose, more = ("the run's ", "; give a larger --max-steps to go on") if own_limit else ("", "")
        print(f"{trainer.run_dir}: already at step {trainer.state.global_step} ({whose}--max-steps "
              f"{max_steps}); nothing to do{more}.")  # fmt: skip
    return True


def _start_notes(trainer: Trainer, kept: list[str], world: World) -> None:
    """What the main process says before the first step: kept run options, the resume, the processes."""
    if kept:
        print(f"cips3d train: note: going on with the run's {', '.join(kept)} (give a flag to change it; "
              "--fid 0 and --no-tf32 turn those off).")  # fmt: skip
    if trainer.resume_note:
        print(f"cips3d train: note: {trainer.resume_note}")
    if world.distributed:
        sizes = "/".join(str(size) for size in dict.fromkeys(s.batch_size for s in trainer.config.stages))
        print(f"cips3d train: {world.world_size} processes, {world.world_size} x {sizes} images per step.")


def _note_still_ema(ema_start: int, stage_step: int) -> None:
    """A run that stops before its stage's EMA began has a G_ema as the stage began (a short fine-tune's
    is its --init model, tensor for tensor), and G_ema is what every other command reads: say so."""
    if stage_step < ema_start:
        print(f"cips3d train: note: G_ema, which sample, blend and convert read, follows G from step "
              f"{ema_start} of a stage (as official) and this stage is at step {stage_step}: it is still as "
              "the stage began (a fine-tune's: the --init model). Train past that step.")  # fmt: skip
