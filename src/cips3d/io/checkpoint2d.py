"""2D CIPS generators on disk: our folder (`config.json` + `model.safetensors`, format
`cips3d.Generator2D`), a `cips3d train2d` run or snapshot (its G_ema or G), and the official CIPS
training checkpoints (`{'g', 'g_ema', 'd', ..., 'args'}` `.pt` files, or a bare generator state dict),
read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from cips3d.config_2d import Cips2DConfig
from cips3d.convert.official import check_keys
from cips3d.convert.official_2d import (
    config_from_official_2d,
    from_official_2d,
    is_official_cips2d,
    to_official_2d,
)
from cips3d.convert.official_d2d import d_config_from_official_2d, from_official_d2d, to_official_d2d
from cips3d.devices import usable_device
from cips3d.errors import CheckpointError, ConfigError
from cips3d.io.checkpoint import (
    CONFIG_FILE,
    FORMAT_NAME_2D,
    FORMAT_VERSION,
    THREE_D_COMMANDS,
    carries_own_config,
    check_finite,
    is_run_or_snapshot,
    model_folder_of,
    plain_state_dict,
    read_meta,
    read_torch_file,
    read_weights,
    write_checkpoint,
)
from cips3d.io.files import path_of
from cips3d.models.discriminator2d import Discriminator2D
from cips3d.models.generator2d import Generator2D

Which = Literal["G_ema", "G"]
OFFICIAL_KEYS = {"G_ema": "g_ema", "G": "g"}
"""Where an official CIPS training checkpoint keeps each generator."""


def save_generator2d(G: Generator2D, directory: str | os.PathLike) -> Path:
    """Write `G` as `config.json` + `model.safetensors` into `directory` (created if needed)."""
    if not isinstance(G, Generator2D):
        raise ConfigError(f"save_generator2d writes 2D CIPS generators, got a {type(G).__name__} "
                          "(save_generator writes CIPS-3D ones).")  # fmt: skip
    meta = {"format": FORMAT_NAME_2D, "format_version": FORMAT_VERSION, "generator": G.config.to_dict()}
    return write_checkpoint(path_of(directory, "directory"), G.state_dict(), meta)


def _load_folder(directory: Path) -> Generator2D:
    meta = read_meta(directory / CONFIG_FILE, FORMAT_NAME_2D)
    try:
        config = Cips2DConfig.from_dict(meta["generator"])
    except (KeyError, ConfigError) as err:
        raise CheckpointError(f"{directory / CONFIG_FILE}: {err}") from err
    state = read_weights(directory)
    G = Generator2D(config)
    check_keys(state, {k: tuple(v.shape) for k, v in G.state_dict().items()}, str(directory))
    G.load_state_dict(state)
    return G


# The top-level names of an official CIPS-3D generator's state dict (what tells one given to a 2D command).
OFFICIAL_3D_PREFIXES = {"siren", "inr_net", "mapping_network_nerf", "mapping_network_inr"}


def official_generator_state(content: Any, path: str | os.PathLike, which: Which) -> dict[str, torch.Tensor]:
    """The generator state dict inside what an official CIPS file holds: `content[g_ema]` (or `[g]`)
    of a training checkpoint, or `content` itself when it is a bare generator state dict."""
    if isinstance(content, Mapping) and not is_official_cips2d(content):
        inner = content.get(OFFICIAL_KEYS[which])
        if not isinstance(inner, Mapping) and OFFICIAL_3D_PREFIXES & {str(k).split(".")[0] for k in content}:
            raise CheckpointError(
                f"{path} holds an official CIPS-3D generator, not a 2D CIPS one; {THREE_D_COMMANDS} "
                "take it (with --preset or --official-config)."
            )
        if not isinstance(inner, Mapping):
            raise CheckpointError(
                f"{path} holds no official 2D CIPS generator (no {OFFICIAL_KEYS[which]!r} state dict "
                "and no 'emb.input' tensor)."
            )
        content = inner
    state = plain_state_dict(content, path)
    if not is_official_cips2d(state):
        raise CheckpointError(f"{path} is not an official 2D CIPS generator (no 'emb.input' tensor).")
    return state


def generator2d_from_official(state: Mapping[str, torch.Tensor]) -> Generator2D:
    """A `Generator2D` holding the weights of an official `CIPSskip` state dict (architecture read
    from its shapes; the official embedding alignment kept)."""
    config = config_from_official_2d(state)
    G = Generator2D(config)
    G.load_state_dict(from_official_2d(state, config, G.state_dict()))
    return G


def official_checkpoint2d(
    G: Generator2D, D: Discriminator2D | None = None
) -> dict[str, dict[str, torch.Tensor]]:
    """The weights as the official training checkpoints hold them: `{'g_ema': ...}`, and `'d'` with `D`."""
    if G.config.panorama:
        raise ConfigError("the official CIPS code has no cylinder coordinates, so a panorama model has no "
                          "official form.")  # fmt: skip
    state = {k: v.detach().cpu() for k, v in G.state_dict().items()}
    content = {"g_ema": to_official_2d(state, G.config)}
    if D is not None:
        content["d"] = to_official_d2d({k: v.detach().cpu() for k, v in D.state_dict().items()}, D.config)
    return content


def is_generator2d(path: str | os.PathLike) -> bool:
    """Whether `path` is one of ours that holds a 2D generator (a 2D run, snapshot or model folder);
    official files are not opened here."""
    from cips3d.training.snapshot import is_run2d  # noqa: PLC0415 (training imports io, not back)

    path = Path(path)
    if is_run_or_snapshot(path):
        return is_run2d(path)
    try:
        read_meta(path / CONFIG_FILE if path.is_dir() else path.parent / CONFIG_FILE, FORMAT_NAME_2D)
    except CheckpointError:
        return False
    return True


def load_generator2d(
    path: str | os.PathLike, device: torch.device | str = "cpu", which: Which = "G_ema"
) -> Generator2D:
    """A 2D generator, in eval mode on `device`, from any of: a `cips3d train2d` run folder or one of
    its snapshots (its `G_ema`, or `G`), our model folder (or its `config.json` / `model.safetensors`),
    or an official CIPS `.pt` checkpoint (its `g_ema`, or `g`)."""
    if which not in ("G_ema", "G"):  # anything else was read as "G"
        raise ConfigError(f"which must be 'G_ema' or 'G', got {which!r}.")
    device = usable_device(device)  # before reading: a missing GPU is said at once
    return _load(path_of(path), which, with_discriminator=False).G.to(device).eval()


@dataclass
class Models2D:
    """What a fine-tuning run starts from: a generator and, when the source has a usable one, its
    discriminator (else `why_no_d` says why not)."""

    G: Generator2D
    D: Discriminator2D | None = None
    why_no_d: str = "it has no discriminator"


def load_models2d(path: str | os.PathLike) -> Models2D:
    """G_ema (`g_ema`) and the discriminator of a 2D run or an official CIPS checkpoint (none for our
    model folders, or an official file without `d`), read once, on the CPU."""
    return _load(path_of(path), "G_ema", with_discriminator=True)


def _load(path: Path, which: Which, with_discriminator: bool) -> Models2D:
    from cips3d.training.trainer2d import load_run2d  # noqa: PLC0415 (training imports io, not back)

    if not path.exists():
        raise CheckpointError(f"there is no 2D model, run or checkpoint at {path}.")
    if is_run_or_snapshot(path):
        snapshot, config = load_run2d(path, training_state=False)
        G = Generator2D(config.generator_config())
        G.load_state_dict(check_finite(snapshot.G_ema if which == "G_ema" else snapshot.G, snapshot.path))
        if not with_discriminator:
            return Models2D(G.eval())
        D = Discriminator2D(config.discriminator())
        D.load_state_dict(snapshot.D)
        return Models2D(G.eval(), D)
    if carries_own_config(path):
        G = _load_folder(model_folder_of(path)).eval()
        return Models2D(G, why_no_d="a model folder holds the generator only")
    content = read_torch_file(path)
    G = generator2d_from_official(official_generator_state(content, path, which)).eval()
    if not (with_discriminator and isinstance(content, Mapping) and isinstance(content.get("d"), Mapping)):
        return Models2D(G, why_no_d="the file has no 'd'")
    try:  # a discriminator cips3d cannot build leaves the generator usable
        return Models2D(G, discriminator2d_from_official(plain_state_dict(content["d"], path)))
    except CheckpointError as err:
        return Models2D(G, why_no_d=str(err).rstrip("."))


def discriminator2d_from_official(state: Mapping[str, torch.Tensor]) -> Discriminator2D:
    """A `Discriminator2D` holding an official 2D CIPS discriminator's weights (config from the shapes)."""
    config = d_config_from_official_2d(state)
    D = Discriminator2D(config)
    D.load_state_dict(from_official_d2d(state, config, D.state_dict()))
    return D
