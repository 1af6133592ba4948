"""Training snapshots: everything needed to continue a run exactly, written so that a crash never
leaves a snapshot half-written.

A snapshot is one folder `snapshots/step-000001234/` holding

    G.safetensors, G_ema.safetensors, D.safetensors   weights (plain tensors)
    optimizers.pt                                     both Adam states (loaded with weights_only=True)
    rng.pt                                            the run's generator states
    state.json                                        step, stage, data position, counters, config

It is first written as `.tmp-step-...` (every file fsynced) and then renamed: a folder named
`step-*` is always complete. Old snapshots are renamed away before they are deleted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from cips3d.config_2d import is_2d_run_config
from cips3d.data.images import ImageDataset
from cips3d.errors import CheckpointError, ConfigError, UserError, error_gist, first_line
from cips3d.fast import matmul_route
from cips3d.io.files import atomic_write, file_mode

FORMAT = "cips3d.training-snapshot"
FORMAT_VERSION = 1
_NAME = re.compile(r"^step-(\d{9})$")


@dataclass
class TrainState:
    """Counters of a run; together with weights, optimisers and RNG states it defines the run."""

    stage: int = 0
    stage_step: int = 0
    global_step: int = 0
    images_seen: int = 0
    data_position: int = 0
    """Dataset positions consumed so far (the data sampler resumes from here)."""
    skipped_steps: int = 0
    bad_steps_in_row: int = 0
    best_score: float | None = None
    best_snapshot: str | None = None
    stage_started_from: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    """One record per snapshot: step, stage, score."""
    data_fingerprint: str | None = None
    """`ImageDataset.fingerprint` of the run's images, as run.json records it: a resume whose run.json
    is gone (deleted as its error advises) still checks that it goes on with the same images."""


@dataclass
class Snapshot:
    """A loaded snapshot."""

    path: Path
    state: TrainState
    config: dict[str, Any]
    G: dict[str, torch.Tensor]
    G_ema: dict[str, torch.Tensor]
    D: dict[str, torch.Tensor]
    optimizers: dict[str, Any]
    rng: dict[str, Any]


def snapshot_name(global_step: int) -> str:
    return f"step-{global_step:09d}"


def list_snapshots(root: str | os.PathLike) -> list[Path]:
    """Complete snapshots under `root`, oldest first (unfinished `.tmp-*` folders are ignored)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsynced(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def capture_rng(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """States of the run's generators. Training draws from these alone, never from torch's, numpy's or
    Python's global generators, so those are neither saved nor set (runs of one seed then write the same
    bytes, and a resume leaves the caller's global state alone)."""
    return {"generators": {name: g.get_state() for name, g in generators.items()}}


def restore_rng(rng: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    """Set `generators` to their saved states (global states that older snapshots hold are ignored)."""
    for name, g in generators.items():
        g.set_state(rng["generators"][name])


def write_snapshot(
    root: str | os.PathLike,
    state: TrainState,
    config: dict[str, Any],
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    rng: dict[str, Any],
) -> Path:
    """Write a snapshot atomically and return its folder. `modules` must hold G, G_ema and D.

    A write that fails (a full disk, a lost mount) leaves no partial folder behind and ends in a
    `UserError` naming the cause and the newest complete snapshot."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / snapshot_name(state.global_step)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "state": asdict(state), "config": config}
        _write_files(tmp, meta, modules, {name: opt.state_dict() for name, opt in optimizers.items()}, rng)
    except (OSError, RuntimeError, SafetensorError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        complete = list_snapshots(root)
        last = f"the newest complete one is {complete[-1].name}" if complete else "no complete one exists yet"
        why = _full_disk(root, complete[-1] if complete else None) or first_line(err, 200)
        raise UserError(f"cannot write the snapshot {final.name} in {root} ({why}); {last}.") from err
    # A rerun of the same step (after a resume) replaces its folder: the old one is moved aside, the new
    # one renamed in, and only then is the old one deleted, so a crash while deleting loses neither.
    old = _set_aside(final) if final.exists() else None
    os.rename(tmp, final)
    _fsync_dir(root)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _full_disk(root: Path, previous: Path | None) -> str | None:
    """'the disk is full: ...' when too little room is left under `root` for a snapshot the size of
    `previous` (torch reports a full disk in its own words, "unexpected pos 238336 vs 238224"); else None.
    A run needs room for its kept snapshots and two more: old ones are deleted after a new one is written."""
    needed = sum(f.stat().st_size for f in previous.iterdir()) if previous else 1 << 20
    free = shutil.disk_usage(root).free
    if free >= needed:
        return None
    return f"the disk is full: {free / 2**20:.1f} MB free, a snapshot takes about {needed / 2**20:.1f} MB"


def _write_files(
    tmp: Path, meta: dict, modules: dict[str, torch.nn.Module], optimizers: dict, rng: dict
) -> None:
    """Every file of a snapshot into the new folder `tmp` (`meta`: state.json's content), each fsynced."""
    tmp.mkdir()
    for name in ("G", "G_ema", "D"):
        tensors = {k: v.detach().cpu().contiguous() for k, v in modules[name].state_dict().items()}
        save_file(tensors, str(tmp / f"{name}.safetensors"))
    torch.save(optimizers, tmp / "optimizers.pt")
    torch.save(rng, tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps(meta, indent=2) + "\n")
    for path in tmp.iterdir():
        os.chmod(path, file_mode())  # safetensors writes 0600: a team's run had weights only one could read
        _fsynced(path)
    _fsync_dir(tmp)


def _set_aside(path: Path) -> Path:
    """Rename a snapshot folder to the `.del-*` name that `prune_snapshots` clears; return the new name."""
    trash = path.with_name(f".del-{path.name}-{os.getpid()}")
    os.rename(path, trash)
    return trash


def _discard(path: Path) -> None:
    """Remove a snapshot folder so that no half-deleted `step-*` folder can ever be seen."""
    shutil.rmtree(_set_aside(path), ignore_errors=True)


def prune_snapshots(root: str | os.PathLike, keep: int, protect: set[str]) -> list[Path]:
    """Delete all but the newest `keep` snapshots, never those named in `protect`; return the deleted."""
    snapshots = list_snapshots(root)
    doomed = [p for p in snapshots[:-keep] if p.name not in protect] if keep > 0 else []
    for path in doomed:
        _discard(path)
    for pattern in (".tmp-*", ".del-*"):  # from an earlier crash mid-write or mid-delete
        for leftover in Path(root).glob(pattern):
            if leftover.is_dir() and not leftover.name.endswith(f"-{os.getpid()}"):
                shutil.rmtree(leftover, ignore_errors=True)
    return doomed


RUN_RECORD = "run.json"  # beside snapshots/: the dataset a run trains on and its config, for --resume


def run_options(
    max_steps: int | None, fid_images: int, inception: str | os.PathLike | None, **more: Any
) -> dict[str, Any]:
    """The "options" of run.json: how this run was started, which a resume keeps unless told otherwise
    (`recorded_options` reads them back). `more`: what only one trainer has (tf32, init), and the
    torchrun job that ran it last (`torchrun_job`: a restart of that job continues it, see
    `cli.resuming.resume_after_restart`)."""
    inception = str(Path(inception).resolve()) if inception else None
    route = {"matmul_route": matmul_route()}  # the CPU product route: a resume takes it again
    return {"max_steps": max_steps, "fid": fid_images or None, "inception": inception, **route, **more}


def write_run_record(
    run_dir: str | os.PathLike,
    data: str | os.PathLike,
    config: dict[str, Any],
    dataset: ImageDataset,
    options: dict[str, Any] | None = None,
) -> None:
    """Record the dataset (its absolute path, image count and fingerprint), the config of the run and the
    options it was run with (step limit, FID, TF32) in `run_dir`: the fingerprint lets a resume tell the
    run's own images from others, the options let it go on as the run was asked to."""
    meta = {"data": str(Path(data).resolve()), "images": dataset.num_images,
            "data_fingerprint": dataset.fingerprint, "options": options or {}, "config": config}  # fmt: skip
    atomic_write(Path(run_dir) / RUN_RECORD, lambda p: Path(p).write_text(json.dumps(meta, indent=2) + "\n"))


def check_run_data(run_dir: str | os.PathLike, dataset: ImageDataset, state: TrainState) -> None:
    """A `UserError` unless `dataset` holds the images the run in `run_dir` recorded (by fingerprint, in
    run.json or else in the resumed snapshot's `state`; runs from before fingerprints pass): other data
    would make its data order and scores meaningless."""
    meta = read_run_record(run_dir) or {}
    recorded = meta.get("data_fingerprint") or state.data_fingerprint
    if recorded is None or recorded == dataset.fingerprint:
        return
    if recorded == dataset.cp437_fingerprint:  # recorded before such names were read as UTF-8
        warnings.warn(
            f"{dataset.path} names its images in UTF-8 without saying so; cips3d read them as cp437 when "
            f"{run_dir} began and reads them as UTF-8 now, which orders them differently: the run goes "
            "on with the same images, but not bit for bit as it would have.",
            stacklevel=2,
        )
        return
    then, now = meta.get("images"), dataset.num_images
    known = then is not None and then != now  # run.json's count (gone with it)
    change = f"{now} images now, {then} when it was trained" if known else "other files or sizes"
    raise UserError(
        f"the images at {dataset.path} are not the ones {run_dir} was trained on ({change}); --resume goes "
        "on with the run's own data, or start a new run with --init to train on other images."
    )


def recorded_options(run_dir: str | os.PathLike) -> dict[str, Any]:
    """How the run in `run_dir` was last run (its run.json "options": max_steps, tf32, fid, inception,
    init); empty when not recorded."""
    options = (read_run_record(run_dir) or {}).get("options")
    return options if isinstance(options, dict) else {}


def run_pruning(folder: str | os.PathLike) -> Path | None:
    """The run one of whose snapshot folders (`snapshots/step-NNNNNNNNN`) holds `folder` at any depth,
    or None: training prunes old snapshots with everything in them, so files written there are deleted
    with them. Other folders under snapshots/ are left alone by pruning, and so here."""
    folder = Path(os.path.abspath(folder))
    for part in (folder, *folder.parents):
        if _NAME.match(part.name) and part.parent.name == "snapshots":
            return part.parent.parent
    return None


def check_run_outside_data(run_dir: str | os.PathLike, data: str | os.PathLike) -> None:
    """A `ConfigError` when the run folder lies inside its data folder, or the data folder is or holds a
    training run: the folder is read at any depth, so a run's previews would become training images."""
    if not Path(data).is_dir():
        return
    for root, folders, files in os.walk(data):  # a run given as --data, or a folder of runs (`runs/`)
        # A run's record beside its snapshots, previews or logs (one stopped before its first snapshot
        # has previews), or a snapshot's state beside its weights: a stray run.json or state.json among
        # photos is no run.
        run = RUN_RECORD in files and bool({"snapshots", "previews", "logs"} & set(folders))
        if run or {"state.json", "G_ema.safetensors"} <= set(files):
            raise ConfigError(
                f"the data folder {data} holds the training run (or snapshot) {root}, whose previews would "
                "be trained on as photos; give the folder of your images."
            )
    for resolve in (os.path.realpath, os.path.abspath):  # a link inside the data is walked as data too
        data_dir, run = Path(resolve(data)), Path(resolve(run_dir))
        if run == data_dir or data_dir in run.parents:
            raise ConfigError(
                f"the run folder {run_dir} lies inside the data folder {data}, whose images are read at any "
                "depth: its previews would become training images; pick an --outdir outside it."
            )


def read_run_record(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run.json of `run_dir`; None when there is none (a run from before it was written). A file
    that cannot be read is a `CheckpointError`: going on without it would drop its data check."""
    path = Path(run_dir) / RUN_RECORD
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(
            f"{path} cannot be read ({first_line(err, 200)}); restore it, or delete it and give --data with "
            "the run's images."
        ) from None
    if not isinstance(record, dict):
        raise CheckpointError(f"{path} is not a run record; restore it, or delete it and give --data.")
    return record


def resume_data(run_dir: str | os.PathLike, given: str | os.PathLike | None) -> Path:
    """The dataset a resumed run trains on: the one it recorded, or `given` when that one has moved (a
    run goes on with its own data; another dataset would make its scores and data order meaningless).
    run.json is read once; a damaged one is said here, a missing one (an old run) takes `given`."""
    record = read_run_record(run_dir) or {}
    if not isinstance(record.get("data"), str):
        if given is None:
            raise CheckpointError(f"{run_dir} does not record its dataset; pass --data.")
        return Path(given)  # a run from before run.json was written
    recorded = Path(record["data"])
    if given is None:
        if not recorded.exists():
            raise CheckpointError(
                f"the run's dataset {recorded} (recorded in its run.json) is gone; give --data with where "
                "it is now."
            )
        return recorded
    fingerprinted = "data_fingerprint" in record  # then `check_run_data` judges `given` by its images
    if recorded.exists() and Path(given).resolve() != recorded.resolve() and not fingerprinted:
        raise CheckpointError(
            f"{run_dir} trains on {recorded}; --resume goes on with the run's own data (give --data only "
            "when it has moved), or start a new run with --init to train on other images."
        )
    return Path(given)


def clear_unsnapshotted_start(run_dir: str | os.PathLike) -> list[Path]:
    """For a new run (`check_run_folder` found no snapshot): remove the TensorBoard logs and previews of
    an earlier start in `run_dir` that stopped before its first snapshot (its data failed to decode, it
    ran out of memory), which TensorBoard would show as this run's first steps; return what went, with
    one note on stderr. Its run.json and metrics.jsonl are written anew. A resume of such a folder is
    refused with the advice to train it again, which lands here."""
    run_dir = Path(run_dir)
    if not (run_dir / RUN_RECORD).is_file() or list_snapshots(run_dir / "snapshots"):
        return []
    removed = [run_dir / name for name in ("logs", "previews") if (run_dir / name).is_dir()]
    for path in removed:
        shutil.rmtree(path)
    if removed:
        names = " and ".join(f"{p.name}/" for p in removed)
        print(f"cips3d: note: removed the {names} of the run that stopped before its first snapshot in "
              f"{run_dir}; this run starts there anew.", file=sys.stderr)  # fmt: skip
    return removed


def check_run_folder(run_dir: str | os.PathLike, new_run: bool) -> None:
    """A run must not be written inside another run's snapshots/ folder (pruning would delete it), nor a
    `new_run` into a folder that holds one (their snapshots would mix, and be pruned together) or inside
    another run's folder (TensorBoard reads a run's logs at any depth: their curves would mix)."""
    if new_run and list_snapshots(Path(run_dir) / "snapshots"):
        raise ConfigError(
            f"{run_dir} already holds a run; continue it with {_trainer_command(run_dir)} --resume "
            f"{run_dir}, or pick another --outdir."
        )
    path = Path(run_dir).resolve()
    for folder in (path, *path.parents):
        if folder.name == "snapshots" and list_snapshots(folder):
            raise ConfigError(
                f"{run_dir} lies inside the snapshots of the run in {folder.parent}, whose pruning would "
                f"delete it; continue that run with --resume {folder.parent}, or pick another --outdir."
            )
    for folder in path.parents if new_run else ():
        if (folder / RUN_RECORD).is_file() and (folder / "snapshots").is_dir():
            raise ConfigError(
                f"{run_dir} lies inside the run folder {folder}, whose logs and files it would mix with; "
                "pick an --outdir outside it."
            )


def snapshot_config(path: str | os.PathLike) -> dict[str, Any]:
    """The run config saved with a snapshot (or a run's newest), read from its state.json alone."""
    snapshot = resolve_snapshot(path)
    try:
        config = json.loads((snapshot / "state.json").read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(
            f"the snapshot {snapshot} cannot be read ({error_gist(err)})"
            + _earlier_snapshot_advice(snapshot, path)
            + "."
        ) from err
    if not isinstance(config, dict):
        raise CheckpointError(f"the snapshot {snapshot} holds no run config.")
    return config


def is_run2d(path: str | os.PathLike) -> bool:
    """Whether `path` is a 2D CIPS run folder or one of its snapshots (only its state.json is read)."""
    try:
        return is_2d_run_config(snapshot_config(path))
    except CheckpointError:
        return False


def _trainer_command(run_dir: str | os.PathLike) -> str:
    """'cips3d train2d' or 'cips3d train': the command that continues the run in `run_dir`."""
    return "cips3d train2d" if is_run2d(run_dir) else "cips3d train"


def resolve_snapshot(path: str | os.PathLike) -> Path:
    """A snapshot folder, or the newest complete snapshot of a run folder (or its snapshots/ folder)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"nothing to resume at {path}.")
    if _NAME.match(path.name) and (path / "state.json").is_file():
        return path
    for root in (path / "snapshots", path):
        found = list_snapshots(root)
        if found:
            return found[-1]
    if (path / RUN_RECORD).is_file():  # a run stopped before its first snapshot: nothing to go on from
        raise CheckpointError(f"{path} holds no complete training snapshot: its run stopped before writing "
                              "the first (train it again, without --resume).")  # fmt: skip
    raise CheckpointError(f"{path} holds no complete training snapshot.")


def require_newest_snapshot(path: str | os.PathLike) -> Path:
    """The snapshot `path` names, which must be its run's newest: resuming from an older one would write
    over the newer ones' history (and pruning would delete what it writes)."""
    snapshot = resolve_snapshot(path)
    newest = list_snapshots(snapshot.parent)[-1]
    if snapshot != newest:
        raise CheckpointError(
            f"{snapshot.parent.parent} has newer snapshots than {snapshot.name} (the newest is "
            f"{newest.name}); resume the run itself, or copy {snapshot.name} into a new run folder's "
            "snapshots/ to branch from it (resume that folder with --data and the run's other limits, "
            "such as --max-steps: a copied snapshot does not carry them)."
        )
    return snapshot


def _earlier_snapshot_advice(damaged: Path, given: str | os.PathLike | None = None) -> str:
    """'; the run's previous snapshot is ...': where to go on from when a run's newest snapshot is damaged
    (it is left alone: moving it away is the user's decision); when the snapshot itself was `given` (as
    --init), to name the previous one instead."""
    snapshots = list_snapshots(damaged.parent)
    earlier = [p for p in snapshots if p.name < damaged.name]
    if given is not None and Path(given).resolve() == damaged.resolve() and earlier:
        return f"; the run's previous snapshot is {earlier[-1]}: give that one"
    if not earlier or snapshots[-1] != damaged:
        return ""
    return (f"; the run's previous snapshot, {earlier[-1].name}, is the one to go on from: move "
            f"{damaged.name} out of {damaged.parent} and the run uses it")  # fmt: skip


def _training_state(snapshot: Path, mmap: bool = False) -> tuple[Any, Any]:
    """The optimizers' and random generators' states of a snapshot (mapped, not read, with `mmap`)."""
    return tuple(
        torch.load(snapshot / name, map_location="cpu", weights_only=True, mmap=mmap)
        for name in ("optimizers.pt", "rng.pt")
    )


def training_state_problem(path: str | os.PathLike) -> str | None:
    """Why a snapshot (or a run's newest) could not be resumed from although its weights read: its
    optimizers' or random generators' file is missing or damaged; None when both open. The files are
    mapped, not read, so a large run is checked at once."""
    snapshot = resolve_snapshot(path)
    try:
        _training_state(snapshot, mmap=True)
    except Exception as err:  # a missing, truncated or foreign file
        return error_gist(err)
    return None


def snapshot_processes(path: str | os.PathLike) -> int | None:
    """How many processes trained up to a snapshot (or a run's newest): each one's random state is in
    it, and a resume goes on bit for bit only on as many. None when its rng.pt cannot be read."""
    try:
        rng = torch.load(resolve_snapshot(path) / "rng.pt", map_location="cpu", weights_only=True)
        return 1 + len(rng.get("other_ranks", []))
    except Exception:  # noqa: BLE001 - training_state_problem says what is wrong with it
        return None


def load_snapshot(path: str | os.PathLike, training_state: bool = True) -> Snapshot:
    """Read a snapshot (or the newest one of a run folder); every failure is one `CheckpointError`.
    Without `training_state` the optimizers' and random generators' files are not read (left empty):
    what rendering or inspecting needs, so that a damaged one stops only a resume."""
    given, path = path, resolve_snapshot(path)
    try:
        meta = json.loads((path / "state.json").read_text())
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{path} is not a cips3d training snapshot.")
        weights = {name: load_file(str(path / f"{name}.safetensors")) for name in ("G", "G_ema", "D")}
        optimizers, rng = _training_state(path) if training_state else ({}, {})
        state = TrainState(**meta["state"])
    except CheckpointError:
        raise
    except Exception as err:  # unreadable json, truncated tensors, missing files, unknown fields
        why = f"the snapshot {path} cannot be read ({error_gist(err)})"
        raise CheckpointError(why + _earlier_snapshot_advice(path, given) + ".") from err
    return Snapshot(
        path, state, meta["config"], weights["G"], weights["G_ema"], weights["D"], optimizers, rng
    )
