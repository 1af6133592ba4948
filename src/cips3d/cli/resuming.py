"""What `train --resume` and `train2d --resume` share: which run continues, and how settings given again
are compared with the run's own."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from cips3d.cli.common import fid_images, positive_int
from cips3d.config import is_whole_number
from cips3d.errors import CheckpointError, UserError
from cips3d.fast import matmul_route, use_matmul_route
from cips3d.training.distributed import torchrun_job
from cips3d.training.snapshot import list_snapshots, recorded_options, require_newest_snapshot

RESTART_COUNT = "TORCHELASTIC_RESTART_COUNT"
"""Set by torchrun in the processes it starts: how often it has restarted the job (--max-restarts)."""

RESUME_HELP = (
    "continue a run exactly (the one in --outdir, or RUN) with its own settings and data; {changeable} may "
    "change, the other settings may be left out"
)


def resumed_run_folder(resume: str | bool, outdir: str | None) -> Path:
    """The folder of the run `--resume [RUN]` continues: RUN, or --outdir when RUN is left out. RUN may be
    the run, its snapshots/ or its newest snapshot; --outdir beside it must name the same run."""
    where = outdir if resume is True else resume
    if where is None:
        raise UserError("give the run to continue: --resume RUN.")
    run_dir = require_newest_snapshot(where).parent.parent
    same_run = (run_dir.resolve(), Path(where).resolve())
    if outdir and resume is not True and Path(outdir).resolve() not in same_run:
        raise UserError(f"--resume {resume} continues the run in {run_dir}; leave out --outdir.")
    return run_dir


def keep_matmul_route(run_dir: Path, device: Any, say: bool = True) -> None:
    """A CPU resume multiplies through the route its run recorded (`fast.matmul_route`): the start-up
    timing picks either when they run about as fast, or when another process loads the CPU, and the
    two round differently, so a resume on the other was not bit for bit. Where this machine cannot
    take that route, a warning says so and the run goes on."""
    recorded = recorded_options(run_dir).get("matmul_route")
    if getattr(device, "type", str(device)) != "cpu" or not isinstance(recorded, str):
        return
    if recorded != matmul_route() and not use_matmul_route(recorded) and say:
        now = matmul_route() or "PyTorch's default (this version has no route switch)"
        warnings.warn(f"{run_dir} was trained with float32 products through {recorded}, which this machine "
                      f"cannot use; it goes on through {now}, but not bit for bit as it would have.",
                      stacklevel=2)  # fmt: skip


def keep_run_options(args: argparse.Namespace, run_dir: Path, names: tuple[str, ...]) -> list[str]:
    """Set the options `names` (--max-steps, --tf32, --fid, --inception) a resume was not given to those
    the run was last run with (its run.json), so it goes on as asked: a resume after Ctrl-C keeps its
    step limit and its FID scores. Returns the flags kept, in words."""
    recorded, kept = recorded_options(run_dir), []
    for name in names:
        value, flag = recorded.get(name), "--" + name.replace("_", "-")
        if getattr(args, name) is not None or value is None or value is False:
            continue
        if name == "fid" and value == 0:  # the run was last run with --fid 0: FID stays off
            continue
        if name == "inception" and getattr(args, "fid", None) == 0:  # FID turned off: no network needed
            continue
        if not _valid_option(name, value):
            raise UserError(f"{run_dir}/run.json records {flag} {value!r}, which no run takes; give {flag} "
                            "with the value to go on with.")  # fmt: skip
        if name == "inception" and not Path(value).is_file():
            raise UserError(f"the run's FID network {value} (its --inception) is gone; give --inception with "
                            "where it is now, or --fid 0 to go on without FID.")  # fmt: skip
        setattr(args, name, value)
        kept.append(flag if value is True else f"{flag} {value}")
    return kept


def _valid_option(name: str, value: Any) -> bool:
    """Whether a recorded option has a value its flag could have given (judged by the flag's own type)."""
    if name == "tf32":
        return value is True
    if name == "inception":
        return isinstance(value, str)
    flag_type = {"fid": fid_images, "max_steps": positive_int}[name]
    try:
        return is_whole_number(value) and flag_type(str(value)) == value
    except argparse.ArgumentTypeError:
        return False


def shown(value: Any) -> str:
    """A run setting in words: switches on/off, an unset one 'not set'."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return "not set" if value is None else str(value)


def conflict(flag: str, given: Any, own: Any) -> str:
    """'--patch 8 (the run's: 16)': a flag given with a value the run was not trained with."""
    return f"{flag}{'' if given is True else f' {given}'} (the run's: {shown(own)})"


def refuse_other_settings(run_dir: Path, conflicts: list[str]) -> None:
    """Stop a resume that was given settings other than the run's (see `conflict`)."""
    if conflicts:
        raise UserError(
            f"{run_dir} was trained with other settings than {'; '.join(conflicts)}: --resume continues a "
            "run with its own, so leave them out (or start a new run in another --outdir)."
        )


def resume_after_restart(args: argparse.Namespace, outdir: Path | None, command: str, is_main: bool) -> None:
    """Under `torchrun --max-restarts N`, a failed process makes torchrun start every process again with
    the same command: the run this job wrote in `outdir` then continues from its newest snapshot, as
    `--resume` would (the new run it asked for would refuse the folder). Only a run whose run.json names
    this torchrun job (`torchrun_job`) is continued, so a restart never takes over another run that was
    in the folder; its --init is in the run already. Nothing changes before the first snapshot (the job
    starts afresh), outside torchrun's restarts, or with --resume given."""
    restarts = os.environ.get(RESTART_COUNT, "0")
    if args.resume is not None or outdir is None or not restarts.isdigit() or int(restarts) == 0:
        return
    job = torchrun_job()
    if job is None or not list_snapshots(outdir / "snapshots"):
        return
    try:
        if recorded_options(outdir).get("torchrun_job") != job:
            return  # another job's run (or one from before the record): refused as a new run refuses it
    except CheckpointError:
        return  # an unreadable run.json: the new run's own checks say so
    args.resume, args.outdir, args.init = True, str(outdir), None
    if is_main:
        print(f"cips3d {command}: note: torchrun restart {restarts}: continuing the run in {outdir} from its "
              "newest snapshot, as --resume would.", file=sys.stderr)  # fmt: skip
