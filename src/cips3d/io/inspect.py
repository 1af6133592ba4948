"""What a checkpoint path holds, in words (`cips3d info`): our model folders and training runs (3D or
2D), official CIPS-3D generator or discriminator state dicts (and which preset they fit), official 2D
CIPS checkpoints, or a file cips3d does not recognise. Nothing is unpickled beyond tensors.

    for label, value in describe("runs/tiny"):   # value: a str, or an int or float to format
        print(f"{label}: {value}")
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import re
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image
from safetensors import safe_open

from cips3d.config import GENERATOR_PRESETS, GeneratorConfig, preset_of
from cips3d.config_2d import CIPS2D_PRESETS, Cips2DConfig, is_2d_run_config
from cips3d.convert.official import OURS_ONLY, check_keys
from cips3d.convert.official_2d import config_from_official_2d, holds_official_cips2d
from cips3d.convert.official_d2d import d_config_from_official_2d
from cips3d.data.images import FolderSource, ZipSource, is_image_name, open_image_source, unreadable_reason
from cips3d.errors import CheckpointError, UserError, error_gist
from cips3d.inference.inversion import FORMAT as INVERTED_STYLES
from cips3d.io.checkpoint import (
    CONFIG_FILE,
    FORMAT_NAME_2D,
    WEIGHTS_FILE,
    carries_own_config,
    model_folder_of,
    official_presets_fitting,
    plain_state_dict,
    read_meta,
    read_torch_file,
    read_weights,
)
from cips3d.io.checkpoint2d import official_generator_state
from cips3d.io.images import PNG_RECORD_KEY
from cips3d.models.generator2d import Generator2D
from cips3d.models.generator3d import Generator3D

if TYPE_CHECKING:  # training imports io, not back
    from cips3d.training.snapshot import Snapshot, TrainState

Lines = list[tuple[str, str | int | float]]
"""(label, value): counts and scores as numbers (`cips3d info --json` keeps them so), the rest as words."""


def describe(path: str | os.PathLike) -> Lines:
    """(label, value) lines saying what `path` is and what it holds; `UserError` if it is nothing."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"there is nothing at {path}.")
    run_files = ("state.json", "snapshots", "run.json")  # a snapshot, or a run (perhaps before its first)
    snapshot_file = None
    if path.name == "snapshots" and (path.parent / "run.json").is_file():
        path = path.parent  # a run's snapshots folder: the run
    elif path.is_file() and (path.parent / "state.json").is_file():
        path, snapshot_file = path.parent, path.name  # one file of a snapshot: the snapshot, and the file
    if path.is_dir() and any((path / name).exists() for name in run_files):
        return _run(path, snapshot_file)
    fitted = _fitted_styles_file(path)
    if fitted is not None:
        return _fitted(fitted)
    if _holds_images(path):
        return _images(path)
    if path.is_dir() and not (path / CONFIG_FILE).is_file():
        raise UserError(
            f"{path} is a folder with no model (config.json), training run or images in it; cips3d info "
            "describes those, official .pth files and zips of images."
        )
    if carries_own_config(path):
        return _folder(model_folder_of(path))
    _refuse_other_files(path)
    return _torch_file(path)


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

# Files our commands write that are no model, run or dataset: named as what they are.
OTHER_FILES = {".npy": "a NumPy array (a depth map?)", ".npz": "a NumPy archive", ".ply": "a mesh",
               ".obj": "a mesh", ".mp4": "a video", ".json": "a JSON file", ".jsonl": "a JSON-lines log",
               ".txt": "a text file", ".md": "a text file", ".csv": "a table"}  # fmt: skip


def _refuse_other_files(path: Path) -> None:
    """A UserError naming what a file is when it is plainly no PyTorch file (an image, a mesh, a video):
    reading it as one said it was 'not a readable PyTorch state dict', as if a model were damaged."""
    what = "an image" if is_image_name(path.name) else OTHER_FILES.get(path.suffix.lower())
    if path.is_file() and what:
        raise UserError(
            f"{path} is {what}; cips3d info describes models, training runs and their snapshots, official "
            ".pth files and datasets (a folder or zip of images)."
        )


FITTED_FILES = ("styles.safetensors", "w.safetensors")  # what `cips3d invert` and `invert2d` write


def _fitted_styles_file(path: Path) -> Path | None:
    """The fitted styles at `path`: the file, or the one in an invert output folder (that folder holds
    images too, and was described as a dataset)."""
    if path.is_dir():
        if (path / CONFIG_FILE).exists():
            return None
        return next((path / name for name in FITTED_FILES if (path / name).is_file()), None)
    # By content, not name: multiview and video name their outputs after a renamed styles file.
    alone = path.suffix.lower() == ".safetensors" and not (path.parent / CONFIG_FILE).exists()
    return path if alone else None


def _fitted(path: Path) -> Lines:
    """What a fit wrote: its command, the camera it found (3D), the model it was fitted with, the layers."""
    try:
        with safe_open(str(path), "pt") as f:
            metadata, names = f.metadata() or {}, list(f.keys())
            shapes = {name: f.get_slice(name).get_shape() for name in names}
    except Exception as err:  # safetensors raises several kinds for a damaged or cut-short file
        raise UserError(f"{path} is not a readable safetensors file, damaged or cut short "
                        f"({error_gist(err, 160)}).") from None  # fmt: skip
    inverted = metadata.get("format") == INVERTED_STYLES
    try:
        meta = json.loads(metadata.get("meta", "{}")) if inverted else {}
        if not isinstance(meta, dict):
            raise ValueError("its metadata is not a JSON object")
    except ValueError as err:  # json's JSONDecodeError is one
        raise UserError(f"{path} cannot be read as fitted styles ({error_gist(err, 160)}).") from None
    if inverted:
        angles = [(k, meta.get(k)) for k in ("yaw", "pitch", "fov")]
        camera = ", ".join(f"{k} {v:.4g}" for k, v in angles if isinstance(v, (int, float)))
        lines: Lines = [("kind", "styles fitted by `cips3d invert` (a 3D model)"), ("styles", len(names)),
                        ("camera", camera or "unsaid")]  # fmt: skip
        use = "--styles of multiview, video and view, with the model it was fitted with"
    elif set(names) == {"w"}:
        meta = metadata
        size = shapes["w"]  # [1, layers, D] with --per-layer, else [1, D]
        style = f"one per layer, {size[1]} x {size[2]}" if len(size) == 3 else f"one vector of {size[-1]}"
        lines = [("kind", "a style fitted by `cips3d invert2d` (a 2D CIPS model)"), ("style", style)]
        use = "--styles of view, with the model it was fitted with"
    else:
        raise UserError(f"{path} is a safetensors file without a model's config.json beside it, and holds "
                        "no fitted styles.")  # fmt: skip
    for key, label in (("model", "fitted with"), ("image", "photo")):
        if meta.get(key):
            lines.append((label, str(meta[key])))
    return [*lines, ("file", str(path)), ("use", use)]


def _holds_images(path: Path) -> bool:
    """A folder holding images (and no model), or a zip of images that PyTorch did not write."""
    if path.is_dir():  # the datasets' own scan: linked folders count, hidden and __MACOSX files do not
        return not (path / CONFIG_FILE).exists() and bool(FolderSource(path).names)
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return not any(n.endswith("data.pkl") for n in names) and any(is_image_name(n) for n in names)


def _images(path: Path) -> Lines:
    """A dataset: how many images, the first one's size and mode, and whether `cips3d dataset` packed
    it (its dataset.json); image headers only, so a large dataset is described at once."""
    source = open_image_source(path)
    first = source.names[0]
    try:
        with Image.open(io.BytesIO(source.read(first))) as img:
            looks = f"{img.width} x {img.height} {img.mode} {img.format}"
    except Exception as err:  # PIL raises many kinds of errors for malformed files
        looks = f"unreadable ({unreadable_reason(err)})"
    packed = isinstance(source, ZipSource) and source.has_member("dataset.json")
    kind = ("a dataset zip written by `cips3d dataset`" if packed
            else "a zip of images" if isinstance(source, ZipSource) else "a folder of images")  # fmt: skip
    writers = _render_writers(source)
    source.close()
    use = "--data of train, train2d and metrics, or the source of `cips3d dataset`"
    lines: Lines = [("kind", kind), ("images", len(source.names)), ("first image", f"{first}: {looks}"),
                    ("use", use)]  # fmt: skip
    return lines + _render_lines(source.names, writers)


def _render_lines(names: tuple[str, ...], writers: dict[str, str]) -> Lines:
    """A note on the images among `names` that are renders (by name, or grids by their `writers`), and
    which commands wrote them: a `sample` folder was offered as training data, depth maps included."""
    grids = [name for name, command in writers.items() if command in _GRID_WRITERS]
    named = (name for name in names if _RENDER_OUTPUT.fullmatch(Path(name).name))
    rendered = sorted({*grids, *named})
    lines: Lines = []
    if rendered:
        lines.append(("note", f"{len(rendered)} of them look like what cips3d's renders write (grids, aux, "
                              f"depth or normals maps, such as {rendered[0]}); as --data they would be "
                              "trained on as photos"))  # fmt: skip
    if writers:
        lines.append(("written by", _written_by(writers)))
    return lines


# The names our rendering commands give to what is not a plain image of one seed.
_RENDER_OUTPUT = re.compile(r"grid(_(aux|depth|normals))?\.png|seed\d+_(aux|depth|normals|flip)\.png")
# What the rendering commands write: their records are looked for in these alone, so that the photos of
# a large dataset are not opened one by one.
_OUR_NAMES = re.compile(r"(grid|seed\d+)(_\w+)?\.png")
_SEED_IMAGE = re.compile(r"seed\d+\.png")
# The commands whose seedNNNN.png are grids, not one image of one seed as sample's are; what they hold.
_GRID_WRITERS = {"cips3d multiview": "grids of views", "cips3d blend": "rows of source | target | blends"}


def _render_writers(source: FolderSource | ZipSource) -> dict[str, str]:
    """{name: the command that wrote it} of the images of `source` named as our renders, as the record in
    each PNG says (`save_png(record=...)`). A PNG without one (written before the records) is multiview's
    when a seedNNNN_flip.png is beside it (only multiview writes one); else nothing on disk tells
    multiview's or blend's seedNNNN.png from sample's (no record file is written beside them)."""
    writers = {}
    for name in source.names:
        if _OUR_NAMES.fullmatch(Path(name).name):
            command = _png_record(source, name).get("command")
            if isinstance(command, str) and command.startswith("cips3d "):
                writers[name] = command
    present = set(source.names)
    for name in source.names:
        flip = name.removesuffix(".png") + "_flip.png"
        if name not in writers and _SEED_IMAGE.fullmatch(Path(name).name) and flip in present:
            writers[name] = "cips3d multiview"
    return writers


def _png_record(source: FolderSource | ZipSource, name: str) -> dict[str, Any]:
    """The record `save_png` wrote into the PNG `name` of `source` ({} for none). Read from the chunks
    before the pixels (`info`), where PIL writes it: `read_png_record` decodes the whole image."""
    try:
        found = source.root / name if isinstance(source, FolderSource) else io.BytesIO(source.read(name))
        with Image.open(found) as img:
            text = img.info.get(PNG_RECORD_KEY) if img.format == "PNG" else None
        record = json.loads(text) if isinstance(text, str) else None
    except Exception:  # noqa: BLE001 - PIL and json raise many kinds; the answer is the same: none
        return {}
    return record if isinstance(record, dict) else {}


def _written_by(writers: dict[str, str]) -> str:
    """'cips3d multiview: its 2 seedNNNN.png are grids of views, not single images', per command."""
    said = []
    for command in sorted(set(writers.values())):
        grids = [n for n, c in writers.items() if c == command and _SEED_IMAGE.fullmatch(Path(n).name)]
        held = _GRID_WRITERS.get(command)
        said.append(f"{command}: its {len(grids)} seedNNNN.png are {held}, not single images"
                    if held and grids else command)  # fmt: skip
    return "; ".join(said)


def _parameters(state: Mapping[str, torch.Tensor]) -> int:
    """Values in a generator's state dict, less our truncation-mean buffers (not parameters)."""
    return sum(math.prod(t.shape) for k, t in state.items() if k not in OURS_ONLY)


def _summary_3d(config: GeneratorConfig) -> str:
    preset = preset_of(config)
    return f"preset {preset}" if preset else "a custom config (see config.json)"


def _summary_2d(config: Cips2DConfig) -> str:
    widths = "/".join(str(w) for w in (config.first_width, *config.widths))
    where = "official alignment" if not config.embedding_align_corners else "ours"
    return (f"CIPS{config.architecture} {config.grid_width}x{config.size} px, {config.coordinates} "
            f"coordinates, widths {widths}, embedding sampling: {where}")  # fmt: skip


def _run(path: Path, snapshot_file: str | None = None) -> Lines:
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
    lines += [("parameters", _parameters(snap.G_ema)), ("D parameters", _parameters(trained))]
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
        return "generator", f"{_summary_2d(train.generator_config())}; {source}"
    preset = preset_name(TrainConfig.from_dict(dict(config)))
    source = f"preset {preset}" if preset else "a config of its own"
    init = options.get("init")
    return "curriculum", f"{source}; fine-tuned from {init}" if init else source


def _run_past_damage(path: Path, err: CheckpointError) -> Lines:
    """A run whose newest snapshot cannot be read (`err`): the newest that reads, the one `load_snapshot`'s
    error says to go on from, or else what run.json records. `err` is raised when there is no run to
    describe (no snapshot, or nothing that says its config): as a damaged snapshot named is."""
    from cips3d.training.snapshot import list_snapshots  # noqa: PLC0415 (training imports io, not back)

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
    damage = (f"{damaged}; {snap.path.name}, described here, is the one to go on from: move {moved} out of "
              f"{newest.parent} and the run uses it")  # fmt: skip
    lines = _snapshot_lines(snap, path)
    return [lines[0], ("snapshots", len(snapshots)), ("newest snapshot", damage), *lines[1:]]


def _newest_readable(snapshots: list[Path]) -> tuple[Snapshot | None, list[Path]]:
    """The newest of `snapshots` whose weights read (None if none does), and those newer that do not."""
    from cips3d.training.snapshot import load_snapshot  # noqa: PLC0415 (training imports io, not back)

    unreadable = []
    for snapshot in reversed(snapshots):
        try:
            return load_snapshot(snapshot, training_state=False), unreadable
        except CheckpointError:
            unreadable.append(snapshot)
    return None, unreadable


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


def _folder(directory: Path) -> Lines:
    meta = read_meta(directory / CONFIG_FILE, None)
    weights = read_weights(directory)
    if meta["format"] == FORMAT_NAME_2D:
        config = Cips2DConfig.from_dict(meta["generator"])
        lines: Lines = [("kind", "a 2D CIPS model folder"), ("generator", _summary_2d(config))]
        model: torch.nn.Module = _on_meta(lambda: Generator2D(config))
    else:
        config3d = GeneratorConfig.from_dict(meta["generator"])
        lines = [("kind", "a CIPS-3D model folder"), ("generator", _summary_3d(config3d))]
        model = _on_meta(lambda: Generator3D(config3d, initialize=False))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    try:
        check_keys(weights, shapes, WEIGHTS_FILE)
    except CheckpointError as err:  # sample would refuse the folder: said here too
        return [*lines, ("parameters", _parameters(weights)), ("weights", f"do not fit config.json: {err}")]
    return [*lines, ("parameters", _parameters(weights)), ("weights", "fit config.json")]


def _on_meta(build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """The model of a config with shapes only (no memory, no initialisation)."""
    with torch.device("meta"):
        return build()


def _torch_file(path: Path) -> Lines:
    content = read_torch_file(path)
    if holds_official_cips2d(content):
        return _official_2d(content, path)
    try:
        state = plain_state_dict(content, path)
    except CheckpointError:
        held = (
            ", ".join(sorted(map(str, content))[:6])
            if isinstance(content, Mapping)
            else type(content).__name__
        )
        return [("kind", f"a PyTorch file cips3d does not recognise (it holds {held})")]
    if any(key.startswith("siren.") for key in state):
        return _official_3d(state)
    if any(key.startswith("main_disc.") for key in state):
        return [("kind", "an official CIPS-3D discriminator state dict"), ("parameters", _parameters(state))]
    return [("kind", f"a state dict of {len(state)} tensors that cips3d does not recognise"),
            ("parameters", _parameters(state))]  # fmt: skip


def _official_3d(state: Mapping[str, torch.Tensor]) -> Lines:
    fits = official_presets_fitting(state)
    if fits:
        preset = f"fits preset {', '.join(fits)} (convert with --preset {fits[0]})"
    else:
        preset = f"fits none of the presets ({', '.join(GENERATOR_PRESETS)}): convert with --official-config"
    return [("kind", "an official CIPS-3D generator state dict"), ("config", preset),
            ("parameters", _parameters(state))]  # fmt: skip


def _official_2d(content: Any, path: Path) -> Lines:
    state = official_generator_state(content, path, "G_ema")
    config = config_from_official_2d(state)
    preset = next((n for n, make in CIPS2D_PRESETS.items() if make() == _plain(config)), None)
    lines: Lines = [("kind", "an official 2D CIPS checkpoint"), ("generator", _summary_2d(config)),
                    ("parameters", _parameters(state))]  # fmt: skip
    if preset:
        lines.append(("architecture", f"the {preset} preset's"))
    if not isinstance(content, Mapping) or "emb.input" in content:
        return lines  # a bare generator state dict
    lines.append(
        ("holds", ", ".join(k for k in ("g", "g_ema", "d", "g_optim", "d_optim", "args") if k in content))
    )
    if isinstance(content.get("d"), Mapping):
        try:
            d = d_config_from_official_2d(plain_state_dict(content["d"], path))
        except CheckpointError as err:
            lines.append(("discriminator", f"not usable by cips3d ({err})"))
        else:
            lines.append(("discriminator", f"reads {d.input_channels} channels at {d.size} px, multiplier "
                                           f"{d.channel_multiplier}"))  # fmt: skip
    return lines


def _plain(config: Cips2DConfig) -> Cips2DConfig:
    """`config` with our embedding alignment, to compare architectures with the presets."""
    return dataclasses.replace(config, embedding_align_corners=True)
