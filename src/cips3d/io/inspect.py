"""What a path holds, in words (`cips3d info`): our model folders and training runs (3D or 2D),
official CIPS-3D generator or discriminator state dicts (and which preset they fit), official 2D CIPS
checkpoints, fitted styles, datasets, the images and videos our commands write (from their records),
or a file cips3d does not recognise. Nothing is unpickled beyond tensors.

    for label, value in describe("runs/tiny"):   # value: a str, an int or float to format, or a
        print(f"{label}: {value}")               # render record's JSON value (list, dict, bool)
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors import safe_open

from cips3d.config import GENERATOR_PRESETS, GeneratorConfig
from cips3d.config_2d import CIPS2D_PRESETS, Cips2DConfig
from cips3d.convert.official import check_keys
from cips3d.convert.official_2d import config_from_official_2d, holds_official_cips2d
from cips3d.convert.official_d2d import d_config_from_official_2d
from cips3d.data.images import FolderSource, ZipSource, is_image_name, open_image_source, unreadable_reason
from cips3d.errors import CheckpointError, UserError, error_gist, first_line
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
from cips3d.io.images import read_png_record
from cips3d.io.inspect_lines import Lines, parameter_count, summary_2d, summary_3d
from cips3d.io.inspect_run import describe_run
from cips3d.io.video import VIDEO_SUFFIXES, raw_video_header, read_video_record
from cips3d.models.generator2d import Generator2D
from cips3d.models.generator3d import Generator3D
from cips3d.words import counted


def describe(path: str | os.PathLike) -> Lines:
    """(label, value) lines saying what `path` is and what it holds; `UserError` if it is nothing."""
    path = Path(path)
    if not path.exists():
        if path.is_symlink():  # said "nothing at" a link whose target is missing or which loops
            raise UserError(f"{path} is a link to {os.readlink(path)}, which does not exist (or loops).")
        raise UserError(f"there is nothing at {path}.")
    run_files = ("state.json", "snapshots", "run.json")  # a snapshot, or a run (perhaps before its first)
    snapshot_file = None
    if path.name == "snapshots" and (path.parent / "run.json").is_file():
        path = path.parent  # a run's snapshots folder: the run
    elif path.is_file() and (path.parent / "state.json").is_file():
        path, snapshot_file = path.parent, path.name  # one file of a snapshot: the snapshot, and the file
    if path.is_dir() and any((path / name).exists() for name in run_files):
        return describe_run(path, snapshot_file)
    fitted = _fitted_styles_file(path)
    if fitted is not None:
        return _fitted(fitted)
    record = _file_record(path)
    if record is not None:
        return _recorded(path, record)
    if _holds_images(path):
        return _images(path)
    if path.is_dir() and not (path / CONFIG_FILE).is_file():
        videos = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        if videos:
            return _videos(path, videos)
        raise UserError(
            f"{path} is a folder with no model (config.json), training run, images or videos in it; cips3d "
            "info describes those, official .pth files and zips of images."
        )
    if carries_own_config(path):
        return _folder(model_folder_of(path))
    _refuse_other_files(path)
    return _torch_file(path)


# Files our commands write that are no model, run or dataset: named as what they are.
OTHER_FILES = {".npy": "a NumPy array (a depth map?)", ".npz": "a NumPy archive", ".ply": "a mesh",
               ".obj": "a mesh", ".mp4": "a video", ".gif": "a GIF (a video?)", ".json": "a JSON file",
               ".jsonl": "a JSON-lines log", ".txt": "a text file", ".md": "a text file",
               ".csv": "a table"}  # fmt: skip


DESCRIBED = (
    "cips3d info describes models, training runs and their snapshots, official .pth files, datasets "
    "(a folder or zip of images) and the images and videos cips3d's commands write."
)


def _refuse_other_files(path: Path) -> None:
    """A UserError naming what a file is when it is plainly no PyTorch file (an image, a mesh, a video, a
    zip of no images): reading it as one said it was 'not a readable PyTorch state dict', as if a model
    were damaged; and a damaged image or video is said to be one (it read as one without a record)."""
    if not path.is_file():
        return
    if path.suffix.lower() == ".zip" and not _torch_archive(path):
        raise UserError(f"{path} is {_zip_words(path)}; {DESCRIBED}")
    what = "an image" if is_image_name(path.name) else OTHER_FILES.get(path.suffix.lower())
    if what is None:
        return
    damage = _unreadable(path) if what == "an image" or path.suffix.lower() in VIDEO_SUFFIXES else None
    if damage:
        raise UserError(f"{path} is named as {what} but cannot be read as one ({damage}).")
    raise UserError(f"{path} is {what} without a cips3d record; {DESCRIBED}")


def _zip_members(path: Path) -> list[str] | None:
    """The member names of the zip at `path`; None when it is no readable zip."""
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def _torch_archive(path: Path) -> bool:
    """Whether `path` is a zip written by torch.save."""
    names = _zip_members(path)
    return names is not None and _written_by_torch(names)


def _written_by_torch(names: list[str]) -> bool:
    """Whether a zip of these members is torch.save's (they hold a data.pkl)."""
    return any(name.endswith("data.pkl") for name in names)


def _zip_words(path: Path) -> str:
    """What a zip that is no dataset is: unreadable, empty, or holding no images (with a few names)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
    except (zipfile.BadZipFile, OSError) as err:
        return f"a zip that cannot be read ({first_line(err)}: damaged or cut short?)"
    if not names:
        return "an empty zip"
    return f"a zip with no images in it ({counted(len(names), 'file')}: {', '.join(names[:3])})"


def _unreadable(path: Path) -> str | None:
    """Why the image or video at `path` cannot be read (None: it can), from decoding an image and
    reading a video's header."""
    try:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            raw_video_header(path)
        else:
            with Image.open(path) as img:
                img.load()
    except Exception as err:  # PIL and PyAV raise many kinds of errors for malformed files
        return getattr(err, "strerror", None) or unreadable_reason(err)  # PyAV's: "[Errno 1094995529] ..."
    return None


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
    names = _zip_members(path)
    return names is not None and not _written_by_torch(names) and any(is_image_name(n) for n in names)


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
    # Every recorded render but the single images of one seed (sample's, sample2d's): grids, panels of a
    # fit, previews, and what is named as a map or a grid.
    single = {name for name, command in writers.items()
              if _SEED_IMAGE.fullmatch(Path(name).name) and command not in _GRID_WRITERS}  # fmt: skip
    named = (name for name in names if _RENDER_OUTPUT.fullmatch(Path(name).name))
    rendered = sorted({*(set(writers) - single), *named})
    lines: Lines = []
    if rendered:
        look = "looks" if len(rendered) == 1 else "look"
        lines.append(("note", f"{len(rendered)} of them {look} like what cips3d's renders write (grids, aux, "
                              f"depth or normals maps, such as {rendered[0]}); as --data they would be "
                              "trained on as photos"))  # fmt: skip
    if writers:
        lines.append(("written by", _written_by(writers)))
    return lines


# The names our rendering commands give to what is not a plain image of one seed.
_RENDER_OUTPUT = re.compile(r"grid(_(aux|depth|normals))?\.png|seed\d+_(aux|depth|normals|flip)\.png")
# What the rendering commands write: their records are looked for in these alone, so that the photos of
# a large dataset are not opened one by one.
_OUR_NAMES = re.compile(
    r"(grid|seed\d+)(_\w+)?\.png"  # sample, multiview, blend, sample2d
    r"|target\.png|reconstruction\.png"  # invert
    r"|preview\.png|G(_\w+)?\.png"  # training previews (2D, 3D)
)
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
            command = _our_command(_png_record(source, name))
            if command is not None:
                writers[name] = command
    present = set(source.names)
    for name in source.names:
        flip = name.removesuffix(".png") + "_flip.png"
        if name not in writers and _SEED_IMAGE.fullmatch(Path(name).name) and flip in present:
            writers[name] = "cips3d multiview"
    return writers


def _our_command(record: dict[str, Any]) -> str | None:
    """The cips3d command a render's record names ('cips3d sample'), or None (none, or another's)."""
    command = record.get("command")
    return command if isinstance(command, str) and command.startswith("cips3d ") else None


def _png_record(source: FolderSource | ZipSource, name: str) -> dict[str, Any]:
    """The record `save_png` wrote into the PNG `name` of `source` ({} for none, or a member that cannot
    be read: a bad checksum or an encrypted member of a zip is the dataset's business, said elsewhere)."""
    try:
        found = source.root / name if isinstance(source, FolderSource) else io.BytesIO(source.read(name))
    except Exception:  # noqa: BLE001 - zipfile raises several kinds (BadZipFile, RuntimeError, OSError)
        return {}
    return read_png_record(found) or {}


# The order `info` gives a PNG's record in (`save_png(record=...)`); other keys follow, sorted.
_RECORD_ORDER = ("command_line", "output", "run", "step", "seed", "appearance_seed", "mix_layers", "seeds",
                 "styles", "image", "steps", "camera", "final_loss", "fit", "checkpoint", "official_config",
                 "preset", "init_seed", "source", "source_preset", "target", "target_preset",
                 "blend_inr_mapping", "gammas", "layers", "psi", "pose", "yaws", "pitches", "trajectory",
                 "frames", "video_frames", "fov", "fps", "panels", "text", "steps_between", "space",
                 "method", "render", "device", "version")  # fmt: skip


def _file_record(path: Path) -> dict[str, Any] | None:
    """The record a rendering command wrote into the PNG or video at `path` (None: none, or no file)."""
    if not path.is_file():
        return None
    return read_video_record(path) if path.suffix.lower() in VIDEO_SUFFIXES else read_png_record(path)


def _recorded(path: Path, record: dict[str, Any]) -> Lines:
    """A PNG or video one of our commands wrote, from the record in it: how it was made, enough to make
    it again."""
    what = "a video" if path.suffix.lower() in VIDEO_SUFFIXES else "an image"
    command = _our_command(record)
    lines: Lines = [("kind", f"{what} written by {command}" if command else f"{what} with a cips3d record")]
    if what == "an image":
        with Image.open(path) as img:
            lines.append(("image size", f"{img.width} x {img.height}"))
    else:
        frames, width, height = raw_video_header(path)  # it read: its record did
        lines += [("frame size", f"{width} x {height}"), ("length", f"{frames} frames")]
    keys = [k for k in _RECORD_ORDER if k in record] + sorted(set(record) - {*_RECORD_ORDER, "command"})
    return lines + [(key, record[key]) for key in keys]  # as recorded: `info --json` keeps their types


def _videos(path: Path, videos: list[Path]) -> Lines:
    """A folder of videos (and no images): how many, and which commands wrote them, as their records
    say (`cips3d info` on one of them tells how it was made)."""
    writers = {}
    for video in videos:
        command = _our_command(read_video_record(video) or {})
        if command is not None:
            writers[video.name] = command
    lines: Lines = [("kind", "a folder of videos"), ("videos", len(videos)), ("first video", videos[0].name)]
    return lines + ([("written by", _written_by(writers, "video"))] if writers else [])


def _written_by(writers: dict[str, str], noun: str = "image") -> str:
    """'cips3d multiview (4 images; its 2 seedNNNN.png are grids of views, not single images)', per
    command: how many of the folder's images each wrote (the rest are photos or other images)."""
    said = []
    for command in sorted(set(writers.values())):
        mine = [name for name, c in writers.items() if c == command]
        grids = [name for name in mine if _SEED_IMAGE.fullmatch(Path(name).name)]
        held = _GRID_WRITERS.get(command)
        what = counted(len(mine), noun)
        if held and grids:
            what += f"; its {len(grids)} seedNNNN.png are {held}, not single images"
        said.append(f"{command} ({what})")
    return "; ".join(said)


def _folder(directory: Path) -> Lines:
    meta = read_meta(directory / CONFIG_FILE, None)
    weights = read_weights(directory)
    if meta["format"] == FORMAT_NAME_2D:
        config = Cips2DConfig.from_dict(meta["generator"])
        lines: Lines = [("kind", "a 2D CIPS model folder"), ("generator", summary_2d(config))]
        model: torch.nn.Module = _on_meta(lambda: Generator2D(config))
    else:
        config3d = GeneratorConfig.from_dict(meta["generator"])
        lines = [("kind", "a CIPS-3D model folder"), ("generator", summary_3d(config3d))]
        model = _on_meta(lambda: Generator3D(config3d, initialize=False))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    try:
        check_keys(weights, shapes, WEIGHTS_FILE)
    except CheckpointError as err:  # sample would refuse the folder: said here too
        return [
            *lines,
            ("parameters", parameter_count(weights)),
            ("weights", f"do not fit config.json: {err}"),
        ]
    return [*lines, ("parameters", parameter_count(weights)), ("weights", "fit config.json")]


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
        if isinstance(content, Mapping) and all(isinstance(v, torch.Tensor) for v in content.values()):
            raise  # a state dict with a non-finite weight: named, as loading it names it
        held = (
            ", ".join(sorted(map(str, content))[:6])
            if isinstance(content, Mapping)
            else type(content).__name__
        )
        return [("kind", f"a PyTorch file cips3d does not recognise (it holds {held})")]
    if any(key.startswith("siren.") for key in state):
        return _official_3d(state)
    if any(key.startswith("main_disc.") for key in state):
        return [
            ("kind", "an official CIPS-3D discriminator state dict"),
            ("parameters", parameter_count(state)),
        ]
    return [("kind", f"a state dict of {counted(len(state), 'tensor')} that cips3d does not recognise"),
            ("parameters", parameter_count(state))]  # fmt: skip


def _official_3d(state: Mapping[str, torch.Tensor]) -> Lines:
    fits = official_presets_fitting(state)
    if fits:
        preset = f"fits preset {', '.join(fits)} (convert with --preset {fits[0]})"
    else:
        preset = f"fits none of the presets ({', '.join(GENERATOR_PRESETS)}): convert with --official-config"
    return [("kind", "an official CIPS-3D generator state dict"), ("config", preset),
            ("parameters", parameter_count(state))]  # fmt: skip


def _official_2d(content: Any, path: Path) -> Lines:
    state = official_generator_state(content, path, "G_ema")
    config = config_from_official_2d(state)
    preset = next((n for n, make in CIPS2D_PRESETS.items() if make() == _plain(config)), None)
    lines: Lines = [("kind", "an official 2D CIPS checkpoint"), ("generator", summary_2d(config)),
                    ("parameters", parameter_count(state))]  # fmt: skip
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
