"""Generator weights on disk: our format (a folder with `config.json` + `model.safetensors`) and the
official `.pth` state dicts (`generator.pth`, `G_ema.pth`). Nothing here unpickles code: official
files are read with `torch.load(weights_only=True)`, ours with safetensors.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from cips3d.config import GENERATOR_PRESETS, GeneratorConfig, generator_preset
from cips3d.config_2d import is_2d_run_config
from cips3d.convert.official import OURS_ONLY, check_keys, from_official, official_shapes, to_official
from cips3d.convert.official_2d import holds_official_cips2d
from cips3d.devices import usable_device
from cips3d.errors import CheckpointError, ConfigError, first_sentence
from cips3d.io.files import atomic_write, path_of
from cips3d.models.generator3d import Generator3D

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_NAME = "cips3d.Generator3D"
FORMAT_NAME_2D = "cips3d.Generator2D"
FORMAT_VERSION = 1

# What a 3-D command says of a 2D model: the commands that take one.
TWO_D_COMMANDS = "render it with cips3d sample2d (invert2d fits photos with it)"


class MissingPresetError(ConfigError):
    """An official file was given without the preset (or official config) that says its architecture;
    `fits` names the presets its weights fit (empty when none does, or the weights were not read)."""

    def __init__(self, message: str, fits: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.fits = fits


def save_generator(G: Generator3D, directory: str | os.PathLike) -> Path:
    """Write `config.json` and `model.safetensors` into `directory` (created if needed)."""
    if not isinstance(G, Generator3D):  # a 2D model was written with the 3-D label, to fail at loading
        raise ConfigError(f"save_generator writes CIPS-3D generators, got a {type(G).__name__} "
                          "(save_generator2d writes 2D CIPS ones).")  # fmt: skip
    meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "generator": G.config.to_dict()}
    return write_checkpoint(path_of(directory, "directory"), G.state_dict(), meta)


THREE_D_COMMANDS = "the 3-D commands (sample, video, view, invert, train --init)"


def read_meta(path: Path, format_name: str | None = FORMAT_NAME) -> dict[str, Any]:
    """The `config.json` of one of our checkpoints of `format_name` (None: either generator format),
    checked for format and version."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not a readable cips3d config ({err}).") from err
    found = meta.get("format") if isinstance(meta, dict) else None
    if found == FORMAT_NAME_2D and format_name == FORMAT_NAME:
        raise CheckpointError(f"{path.parent} is a 2D CIPS model: {TWO_D_COMMANDS}.")
    if found == FORMAT_NAME and format_name == FORMAT_NAME_2D:
        raise CheckpointError(f"{path.parent} is a CIPS-3D model, not a 2D one; {THREE_D_COMMANDS} take it.")
    accepted = (format_name,) if format_name else (FORMAT_NAME, FORMAT_NAME_2D)
    if found not in accepted:
        raise CheckpointError(f"{path} is not a cips3d generator config (no format {accepted[0]!r}).")
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or not isinstance(meta.get("generator"), dict):
        raise CheckpointError(f"{path} is damaged: it needs a format_version number and a generator config.")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer cips3d (format {version}).")
    return meta


def _read_config(path: Path) -> GeneratorConfig:
    meta = read_meta(path)
    try:
        return GeneratorConfig.from_dict(meta["generator"])
    except (KeyError, ConfigError) as err:
        raise CheckpointError(f"{path}: {err}") from err


def read_weights(directory: Path) -> dict[str, torch.Tensor]:
    """The tensors of `directory`'s `model.safetensors`."""
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{directory} has {CONFIG_FILE} but no {WEIGHTS_FILE}.")
    try:
        state = load_file(str(weights))
    except Exception as err:  # safetensors raises its own error type for truncated or corrupt files
        raise CheckpointError(f"{weights} is not a readable safetensors file ({err}).") from err
    return check_finite(state, weights)


def check_finite(state: dict[str, torch.Tensor], path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """`state` itself, or a `CheckpointError` naming the first tensor holding NaN or infinity (a run
    that diverged renders black images, which should not pass silently)."""
    name = first_non_finite(state)
    if name is not None:
        raise CheckpointError(f"{path} holds NaN or infinite weights (first: {name}); the run diverged.")
    return state


def first_non_finite(state: Mapping[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor of `state` holding NaN or infinity, or None."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return name
    return None


def write_checkpoint(directory: Path, state: Mapping[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write `model.safetensors` (the weights first) and then `config.json` into `directory`; weights
    holding NaN or infinity are refused (loading refuses them: they render black images)."""
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    name = first_non_finite(state)
    if name is not None:
        raise CheckpointError(
            f"the model holds NaN or infinite weights (first: {name}), which render black images; "
            f"nothing was written to {directory}."
        )
    atomic_write(directory / WEIGHTS_FILE, lambda p: save_file(state, p, metadata={"format": "pt"}))
    atomic_write(directory / CONFIG_FILE, lambda p: Path(p).write_text(json.dumps(meta, indent=2) + "\n"))
    return directory


def _load_ours(directory: Path, device: str | torch.device) -> Generator3D:
    config = _read_config(directory / CONFIG_FILE)
    state = read_weights(directory)
    G = Generator3D(config, initialize=False)
    expected = {k: tuple(v.shape) for k, v in G.state_dict().items()}
    check_keys(state, expected, str(directory / WEIGHTS_FILE))
    G = G.to(state["aux_head.weight"].dtype)  # a model saved in float64 (or bf16) comes back so
    G.load_state_dict(state)
    return G.to(device)


def _load_snapshot_ema(path: Path, device: str | torch.device) -> Generator3D:
    """G_ema of a training snapshot (or of the newest snapshot of a run folder)."""
    from cips3d.training.snapshot import load_snapshot  # noqa: PLC0415 (training imports io, not back)

    snap = load_snapshot(path, training_state=False)
    if is_2d_run_config(snap.config):
        raise CheckpointError(f"{snap.path} is a 2D CIPS run (cips3d train2d): {TWO_D_COMMANDS}.")
    try:
        config = GeneratorConfig.from_dict(snap.config["generator"])
    except (KeyError, ConfigError) as err:
        raise CheckpointError(f"the snapshot {snap.path} has no usable generator config ({err}).") from err
    G = Generator3D(config, initialize=False)
    check_keys(snap.G_ema, {k: tuple(v.shape) for k, v in G.state_dict().items()}, f"{snap.path} (G_ema)")
    check_finite(snap.G_ema, f"{snap.path} (G_ema)")
    G.load_state_dict(snap.G_ema)
    return G.to(device)


def missing_checkpoint(path: Path) -> CheckpointError:
    """The error for a checkpoint path that is no regular file: nothing there ("no checkpoint file at
    /dev/null" was said of a device too)."""
    if path.is_dir():
        return CheckpointError(f"{path} is a folder; a checkpoint file was expected there.")
    if path.exists():
        return CheckpointError(f"{path} is not a regular file (a device, a pipe?), so not a checkpoint.")
    return CheckpointError(f"no checkpoint file at {path}.")


def read_torch_file(path: str | os.PathLike) -> Any:
    """What a `.pth`/`.pt` file holds, read with `weights_only=True` (tensors, containers and the
    `argparse.Namespace` that official training checkpoints keep their arguments in; never code)."""
    path = Path(path)
    if not path.is_file():
        raise missing_checkpoint(path)
    try:
        with _namespace_allowed():
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt zip, truncated file, or a pickle that holds code
        raise CheckpointError(f"{path} is not a readable PyTorch state dict ({_why(path, err)}).") from err


def _namespace_allowed() -> contextlib.AbstractContextManager:
    """A scope in which `weights_only` loading accepts `argparse.Namespace`. torch 2.5 and newer scope
    it (`safe_globals`); torch 2.4 has only the process-wide list (`add_safe_globals`), where adding
    this plain data class, once, is harmless."""
    if hasattr(torch.serialization, "safe_globals"):
        return torch.serialization.safe_globals([argparse.Namespace])
    torch.serialization.add_safe_globals([argparse.Namespace])
    return contextlib.nullcontext()


def _why(path: Path, err: Exception) -> str:
    """Why torch.load failed, in words (for a file of another kind it raises a bare KeyError, and its
    weights-only refusals suggest unpickling code, which cips3d never does)."""
    with open(path, "rb") as f:
        pickled = f.read(1) == b"\x80"  # the pickle protocol marker of torch's legacy format
    if not (zipfile.is_zipfile(path) or pickled):
        return "not a PyTorch file, or a truncated one"
    if not pickled and not any(n.endswith("data.pkl") for n in zipfile.ZipFile(path).namelist()):
        return "a zip archive, but not one PyTorch wrote: a dataset zip is --data, not a checkpoint"
    message = str(err)
    if found := re.search(r"Unsupported global: GLOBAL (\S+)", message):
        return f"it holds a {found.group(1)} object, and cips3d loads tensors only, never code"
    if "WeightsUnpickler error" in message:
        return "its pickle is damaged or holds more than tensors"
    return first_sentence(err)


def plain_state_dict(content: Any, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """`content` (read from `path`) as a state dict of tensors, without a DDP wrapper's 'module.' prefix."""
    if not isinstance(content, Mapping) or not all(isinstance(v, torch.Tensor) for v in content.values()):
        raise CheckpointError(f"{path} does not hold a plain state dict of tensors.")
    if content and all(k.startswith("module.") for k in content):  # saved from a DDP wrapper
        content = {k.removeprefix("module."): v for k, v in content.items()}
    return check_finite(dict(content), path)


def read_official_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of an official `.pth` state dict (no code is unpickled; a 'module.' prefix is dropped)."""
    return plain_state_dict(read_torch_file(path), path)


def generator_from_official(
    state: Mapping[str, torch.Tensor], config: GeneratorConfig, device: str | torch.device = "cpu"
) -> Generator3D:
    """A generator of `config` holding official weights; the truncation mean is recomputed."""
    G = Generator3D(config, initialize=False)
    ours = from_official(state, config, G.state_dict())
    with torch.no_grad():
        for name, param in G.state_dict().items():
            if name not in OURS_ONLY:
                param.copy_(ours[name])
    G.update_truncation_mean()
    return G.to(device)


def official_state_dict(G: Generator3D) -> dict[str, torch.Tensor]:
    """Our weights under the official key names and shapes (loadable by the official code)."""
    return to_official({k: v.detach().cpu() for k, v in G.state_dict().items()}, G.config)


def resolve_official_config(
    preset: str | None, official_config: str | os.PathLike | dict | None
) -> GeneratorConfig:
    """The config for an official checkpoint: a preset name, or the official constructor kwargs
    (a dict or a JSON file holding them, optionally under "constructor_kwargs"), not both."""
    if preset is not None and official_config is not None:
        raise ConfigError(
            "--preset and --official-config both give an official file's architecture; give one of them."
        )
    if official_config is None:
        if preset is None:
            raise MissingPresetError(
                "an official .pth checkpoint needs --preset (e.g. ffhq) or --official-config."
            )
        return generator_preset(preset)
    data: Any = official_config
    if not isinstance(data, dict):
        try:
            data = json.loads(Path(official_config).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"cannot read the official config {official_config} ({err}).") from err
    if not isinstance(data, dict):  # JSON null, a list, a number: from_official_kwargs needs names
        raise ConfigError(f"the official config {official_config} must hold a JSON object of the constructor "
                          "kwargs.")  # fmt: skip
    return GeneratorConfig.from_official_kwargs(data.get("constructor_kwargs", data))


def load_generator(
    path: str | os.PathLike,
    *,
    preset: str | None = None,
    official_config: str | os.PathLike | dict | None = None,
    device: str | torch.device = "cpu",
) -> Generator3D:
    """Load a generator from our folder (or its `model.safetensors`), or from an official `.pth`.

    Args:
        path: our checkpoint folder, its weights file, a training run or snapshot folder (its G_ema),
            or an official state-dict file.
        preset: for official files, the config preset ('ffhq' for the released FFHQ/AFHQ/cartoon models).
        official_config: for official files, the official constructor kwargs instead of a preset.
        device: where the model goes.
    """
    path, device = path_of(path), usable_device(device)  # a missing GPU is said before anything is read
    ours = carries_own_config(path)
    if ours and (preset is not None or official_config is not None):
        raise ConfigError(
            f"{path} carries its own config; --preset and --official-config are for official .pth files."
        )
    if is_run_or_snapshot(path):
        return _load_snapshot_ema(path, device).eval()
    if ours:
        return _load_ours(model_folder_of(path), device).eval()
    return official_generator(read_torch_file(path), path, preset, official_config, device).eval()


def is_run_or_snapshot(path: Path) -> bool:
    """Whether `path` is a training snapshot folder or a run folder (even one before its first snapshot,
    so that it is named as such rather than as a folder without a model), not a model folder."""
    markers = ("state.json", "snapshots", "run.json")
    model = (path / CONFIG_FILE).is_file()  # a model folder stays one, whatever else it holds
    return path.is_dir() and not model and any((path / name).exists() for name in markers)


def carries_own_config(path: str | os.PathLike) -> bool:
    """Whether `path` is ours (a model, run or snapshot folder, or a model folder's file given by name),
    which carries its config, rather than an official file, which needs a preset or official config."""
    path = Path(path)
    return path.is_dir() or names_model_file(path)


def names_model_file(path: Path) -> bool:
    """Whether `path` names a file of one of our model folders (its weights or its config.json)."""
    return path.suffix == ".safetensors" or path.name == CONFIG_FILE


def model_folder_of(path: Path) -> Path:
    """The model folder `path` is, or that a weights file or config.json given by name belongs to; a
    `CheckpointError` when a folder has no config.json, or a file is missing or has none beside it (a
    lone .safetensors is no model)."""
    if path.is_dir():
        if path.name == "snapshots" and (path.parent / "run.json").is_file():
            raise CheckpointError(f"{path} holds the snapshots of the run {path.parent}; give the run (its "
                                  "newest snapshot) or one snapshot folder in it.")  # fmt: skip
        if not (path / CONFIG_FILE).is_file():
            raise CheckpointError(f"{path} is a folder without {CONFIG_FILE}, so not a cips3d checkpoint.")
        return path
    if not path.is_file():
        raise missing_checkpoint(path)
    if (path.parent / "state.json").is_file():  # a training snapshot's G_ema.safetensors
        raise CheckpointError(
            f"{path} is one file of the training snapshot {path.parent}; give that folder or the run "
            f"{path.parent.parent.parent}."
        )
    if not (path.parent / CONFIG_FILE).is_file():
        raise CheckpointError(
            f"{path} has no {CONFIG_FILE} beside it, so it is not part of a cips3d model folder (fitted "
            "styles of invert or invert2d go to --styles)."
        )
    return path.parent


def official_generator(
    content: Any,
    path: str | os.PathLike,
    preset: str | None,
    official_config: str | os.PathLike | dict | None,
    device: str | torch.device = "cpu",
) -> Generator3D:
    """The generator an official CIPS-3D file holds (`content`, read from `path` by `read_torch_file`),
    of the config `resolve_official_config` gives; an official 2D CIPS file is named as such."""
    if holds_official_cips2d(content):
        raise CheckpointError(f"{path} is an official 2D CIPS checkpoint: {TWO_D_COMMANDS}, or convert it.")
    state = plain_state_dict(content, path)
    try:
        config = resolve_official_config(preset, official_config)
    except MissingPresetError as err:  # the shapes say which presets can hold it (as `cips3d info` does)
        fits = official_presets_fitting(state)
        if fits:
            raise MissingPresetError(
                f"{str(err).rstrip('.')}; its weights fit --preset {fits[0]}.", tuple(fits)
            ) from None
        raise
    try:
        return generator_from_official(state, config, device)
    except CheckpointError as err:
        fits = official_presets_fitting(state)
        advice = f"; it fits the preset {fits[0]}" if fits else ""  # blend names its presets otherwise
        raise CheckpointError(f"{path}: {str(err).rstrip('.')}{advice}.") from err


def official_presets_fitting(state: Mapping[str, torch.Tensor]) -> list[str]:
    """The generator presets whose official key names and shapes `state` has (shapes only are built)."""
    fits = []
    for name in GENERATOR_PRESETS:
        config = generator_preset(name)
        with torch.device("meta"):
            template = Generator3D(config, initialize=False).state_dict()
        try:
            check_keys(state, official_shapes(config, template), "")
        except CheckpointError:
            continue
        fits.append(name)
    return fits
