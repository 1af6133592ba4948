"""A training run or one of its snapshots in words (`cips3d info RUN`): kind, step, stage, curriculum,
parameters, whether a resume can read it, scores; a run whose newest snapshot is damaged is described
from the newest that reads (or from run.json) with a line saying what to move out."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cips3d.config_2d import is_2d_run_config
from cips3d.errors import CheckpointError, error_gist
from cips3d.io.inspect_lines import Lines, parameter_count, summary_2d

if TYPE_CHECKING:  # training imports io, not back
    from cips3d.training.snapshot import Snapshot, TrainState

# What each file of a training snapshot holds (`cips3d info` on one of them describes its snapshot).
SNAPSHOT_FILES = {
    "G.safetensors": "the generator being trained",
    "G_ema.safetensors": "the generator's moving average, what sample, video, blend and convert read",
    "D.safetensors": "the discriminator",
    "optimizers.pt": "the Adam states of G and D",
    "rng.pt": "the random generators' states, for an exact resume",
    "state.json": "the step, stage, scores and the run's config",
    "preview.png": "the preview grid of G_ema",
}


def describe_run(path: Path, snapshot_file: str | None = None) -> Lines:
    """A run (its newest snapshot) or one snapshot (`snapshot_file`: the file of it that was named)."""
    from cips3d.training.snapshot import load_snapshot  # noqa: PLC0415 (training imports io, not back)

    try:
        snap = load_snapshot(path, training_state=False)
    except CheckpointError as err:
        if (path / "state.json").is_file():  # one snapshot was named: its error is the answer
            raise
        return _run_past_damage(path, err)
    lines = _snapshot_lines(snap, path)
    if snapshot_file is not None:
        lines.insert(
            0, ("file", f"{snapshot_file}: {SNAPSHOT_FILES.get(snapshot_file, 'a file of the snapshot')}")
        )
    return lines


def _snapshot_lines(snap: Snapshot, path: Path) -> Lines:
    """What a loaded snapshot `snap` holds, and what its run records; `path`: the run or snapshot named."""
    from cips3d.training.snapshot import (  # noqa: PLC0415 (training imports io, not back)
        recorded_options,
        snapshot_processes,
        training_state_problem,
    )

    state, config = snap.state, snap.config
    try:  # run.json, read once: the init of a fine-tune, and whether a resume could read it
        options, record_readable = recorded_options(snap.path.parent.parent), True
    except CheckpointError:
        options, record_readable = {}, False
    what = "a snapshot of " if (path / "state.json").is_file() else ""
    lines: Lines = [("kind", f"{what}{_run_kind(config)}"), ("snapshot", str(snap.path)),
                    ("step", state.global_step), ("images seen", state.images_seen),
                    *_stage_lines(config, state), _source_line(config, options)]  # fmt: skip
    trained = {k: t for k, t in snap.D.items() if not k.endswith(".kernel")}  # less its fixed blur filters
    lines += [("parameters", parameter_count(snap.G_ema)), ("D parameters", parameter_count(trained))]
    problem = training_state_problem(snap.path)
    readable = (
        "readable" if problem is None else f"cannot be read, so --resume cannot go on from it ({problem})"
    )
    lines.append(("training state", readable))
    processes = snapshot_processes(snap.path)
    if processes is not None:  # a resume goes on bit for bit on as many (torchrun --nproc_per_node)
        lines.append(("processes", processes))
    if not record_readable:
        lines.append(("run record", "run.json cannot be read: restore it before a --resume, or give --data"))
    if state.best_snapshot:
        lines += [("best snapshot", state.best_snapshot), ("best SWD", state.best_score)]
    if state.history:
        last = state.history[-1]
        lines.append(("last scored step", last.get("step", 0)))
        lines += [(f"last {k.upper()}", last[k]) for k in ("swd", "fid") if k in last]
    return lines


def _run_kind(config: Mapping[str, Any]) -> str:
    if is_2d_run_config(config):
        return "a 2D CIPS training run (cips3d train2d)"
    return "a CIPS-3D training run (cips3d train)"


def _stage_lines(config: Mapping[str, Any], state: TrainState) -> Lines:
    """The stage of a 3D run's curriculum that `state` is in; none for a 2D run."""
    if is_2d_run_config(config):
        return []
    stages = config.get("stages") or [{}]
    stage = stages[min(state.stage, len(stages) - 1)]
    return [("stage", str(stage.get("name", state.stage))), ("steps into the stage", state.stage_step)]


def _source_line(config: Mapping[str, Any], options: Mapping[str, Any]) -> tuple[str, str]:
    """The preset a run trains, or the model it was fine-tuned from (a 2D run's config holds its init,
    a 3D run's is in run.json's options)."""
    from cips3d.training.config import TrainConfig, preset_name  # noqa: PLC0415 (training imports io, not back)
    from cips3d.training.trainer2d import Train2DConfig  # noqa: PLC0415

    if is_2d_run_config(config):
        train = Train2DConfig.from_dict(dict(config))
        source = f"fine-tuned from {train.init}" if train.init else f"preset {train.generator}"
        return "generator", f"{summary_2d(train.generator_config())}; {source}"
    preset = preset_name(TrainConfig.from_dict(dict(config)))
    source = f"preset {preset}" if preset else "a config of its own"
    init = options.get("init")
    return "curriculum", f"{source}; fine-tuned from {init}" if init else source


def _run_past_damage(path: Path, err: CheckpointError) -> Lines:
    """A run whose newest snapshot cannot be read (`err`): the newest that reads, the one `load_snapshot`'s
    error says to go on from, or else what run.json records. `err` is raised when there is no run to
    describe (no snapshot, or nothing that says its config): as a damaged snapshot named is."""
    from cips3d.training.snapshot import (  # noqa: PLC0415 (training imports io, not back)
        list_snapshots,
        training_state_problem,
    )

    snapshots = list_snapshots(path / "snapshots")
    if not snapshots:
        raise err
    newest = snapshots[-1]
    damaged = f"{newest.name} cannot be read ({_snapshot_problem(err)})"
    snap, unreadable = _newest_readable(snapshots[:-1])  # the newest has just failed
    if snap is None:
        earlier = "none of the earlier ones reads either" if len(snapshots) > 1 else "there is no earlier one"
        return _run_record_lines(
            path, snapshots, f"{damaged}; {earlier}, so there is none to go on from", err
        )
    moved = ", ".join(p.name for p in (newest, *unreadable))
    if training_state_problem(snap.path) is None:
        damage = (f"{damaged}; {snap.path.name}, described here, is the one to go on from: move {moved} out "
                  f"of {newest.parent} and the run uses it")  # fmt: skip
    else:  # no snapshot a resume can read: this one still renders
        damage = f"{damaged}; {snap.path.name}, described here, is the newest whose weights read"
    lines = _snapshot_lines(snap, path)
    return [lines[0], ("snapshots", len(snapshots)), ("newest snapshot", damage), *lines[1:]]


def _newest_readable(snapshots: list[Path]) -> tuple[Snapshot | None, list[Path]]:
    """The newest of `snapshots` a resume can go on from (weights and training state read), else the
    newest whose weights read (None if none does), and the snapshots newer than it."""
    from cips3d.training.snapshot import (  # noqa: PLC0415 (training imports io, not back)
        load_snapshot,
        training_state_problem,
    )

    found = None  # (a snapshot, how many are newer): a resumable one, else the newest whose weights read
    for newer, snapshot in enumerate(reversed(snapshots)):
        try:
            snap = load_snapshot(snapshot, training_state=False)
        except CheckpointError:
            continue
        if training_state_problem(snapshot) is None:
            found = (snap, newer)
            break
        found = found or (snap, newer)
    if found is None:
        return None, snapshots
    snap, newer = found
    return snap, list(reversed(snapshots[len(snapshots) - newer :]))


def _snapshot_problem(err: CheckpointError) -> str:
    """Why `load_snapshot` could not read a snapshot, in the words of its error (without the advice)."""
    if err.__cause__ is not None:
        return error_gist(err.__cause__)
    return str(err).rstrip(".")


def _run_record_lines(path: Path, snapshots: list[Path], damage: str, err: CheckpointError) -> Lines:
    """A run none of whose `snapshots` reads, from its run.json (or else a snapshot's state.json): kind,
    preset or init, data; `damage` says what is wrong with the snapshots."""
    from cips3d.training.snapshot import read_run_record  # noqa: PLC0415 (training imports io, not back)

    try:
        record, record_readable = read_run_record(path) or {}, True
    except CheckpointError:
        record, record_readable = {}, False
    config = record.get("config") or _snapshots_config(snapshots)
    if not isinstance(config, dict) or not config:
        raise err  # nothing says what the run is
    options = record.get("options") if isinstance(record.get("options"), dict) else {}
    lines: Lines = [("kind", _run_kind(config)), ("snapshots", len(snapshots)), ("newest snapshot", damage),
                    _source_line(config, options)]  # fmt: skip
    if isinstance(record.get("data"), str):
        images = record.get("images")
        lines.append(
            ("data", f"{record['data']} ({images} images)" if isinstance(images, int) else record["data"])
        )
    if not record_readable:
        lines.append(("run record", "run.json cannot be read: restore it before a --resume, or give --data"))
    return lines


def _snapshots_config(snapshots: list[Path]) -> dict[str, Any] | None:
    """The run config in the newest of `snapshots` whose state.json reads (damaged weights leave it)."""
    from cips3d.training.snapshot import snapshot_config  # noqa: PLC0415 (training imports io, not back)

    for snapshot in reversed(snapshots):
        try:
            return snapshot_config(snapshot)
        except CheckpointError:
            continue
    return None
