"""Starting a run from existing weights (fine-tuning, transfer learning; spec 5.1).

Accepted sources:
- a cips3d training snapshot, or a run folder (its newest snapshot): G, G_ema and D;
- a cips3d generator folder (`config.json` + `model.safetensors`): G and G_ema, D stays fresh;
- an official run folder holding any of `generator.pth`, `G_ema.pth`, `discriminator.pth`;
- a single official generator `.pth`: G and G_ema.
The networks must have the run's architecture; the step counters, optimisers and RNGs start fresh.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cips3d.config import GeneratorConfig, generator_in_words
from cips3d.config_2d import is_2d_run_config
from cips3d.convert.official_d import load_official_discriminator
from cips3d.errors import CheckpointError, first_line
from cips3d.io.checkpoint import (
    CONFIG_FILE,
    generator_from_official,
    load_generator,
    model_folder_of,
    names_model_file,
    read_official_state_dict,
)
from cips3d.models.discriminator import Discriminator, DiscriminatorConfig
from cips3d.models.generator3d import Generator3D
from cips3d.training.config import TrainConfig
from cips3d.training.snapshot import load_snapshot

OFFICIAL_FILES = ("generator.pth", "G_ema.pth", "discriminator.pth")


def _copy(dst: torch.nn.Module, src: torch.nn.Module | dict, what: str) -> None:
    state = src.state_dict() if isinstance(src, torch.nn.Module) else src
    try:
        dst.load_state_dict(state)
    except RuntimeError as err:
        reason = first_line(err)
        raise CheckpointError(f"the {what} weights do not fit this run's network ({reason}).") from None


def _other_generator(source: Path, found: GeneratorConfig, config: TrainConfig) -> str:
    """Why `source` cannot start this run, naming both architectures (it said only "another")."""
    theirs, ours = generator_in_words(found), generator_in_words(config.generator)
    return (
        f"{source} holds {theirs}, this run's preset {ours}; fine-tune with a preset of the same generator."
    )


def _check_generator(G: Generator3D, config: TrainConfig, source: Path) -> None:
    if G.config != config.generator:
        raise CheckpointError(_other_generator(source, G.config, config))


def warm_start(
    source: str | Path, config: TrainConfig, G: Generator3D, G_ema: Generator3D, D: Discriminator
) -> tuple[str, Path]:
    """Load weights from `source` into the run's networks in place; returns what was loaded, in words,
    and the file or folder it was read from (a run's newest snapshot, for a run folder)."""
    source = Path(source)
    if not source.exists():
        raise CheckpointError(f"nothing to start from at {source}.")
    if source.is_file() and names_model_file(source):  # ours, not an official file: its folder, or why not
        source = model_folder_of(source)
    if source.is_dir() and (source / CONFIG_FILE).is_file():
        loaded = load_generator(source)
        _check_generator(loaded, config, source)
        _copy(G, loaded, "generator")
        _copy(G_ema, loaded, "generator")
        return "G and G_ema from a cips3d generator (D starts fresh)", source
    if source.is_dir() and any((source / name).is_file() for name in OFFICIAL_FILES):
        return _official_folder(source, config, G, G_ema, D), source
    if source.is_file():
        loaded = generator_from_official(read_official_state_dict(source), config.generator)
        _copy(G, loaded, "generator")
        _copy(G_ema, loaded, "generator")
        return "G and G_ema from an official generator file (D starts fresh)", source
    snap = load_snapshot(source, training_state=False)
    if is_2d_run_config(snap.config):
        raise CheckpointError(
            f"{source} is a 2D CIPS training run; cips3d train2d --init fine-tunes from it."
        )
    trained = TrainConfig.from_dict(snap.config).generator
    if trained != config.generator:
        raise CheckpointError(_other_generator(snap.path, trained, config))
    for module, state, what in ((G, snap.G, "G"), (G_ema, snap.G_ema, "G_ema"), (D, snap.D, "D")):
        _copy(module, state, what)
    return f"G, G_ema and D from the snapshot {snap.path}", snap.path


def _official_folder(source: Path, config: TrainConfig, G, G_ema, D) -> str:
    """generator.pth -> G, G_ema.pth -> G_ema (each standing in for the other if missing), D if present."""
    found = {name: source / name for name in OFFICIAL_FILES if (source / name).is_file()}
    generators = {
        name: generator_from_official(read_official_state_dict(path), config.generator)
        for name, path in found.items()
        if name != "discriminator.pth"
    }
    raw = generators.get("generator.pth", generators.get("G_ema.pth"))
    ema = generators.get("G_ema.pth", raw)
    if raw is not None:
        _copy(G, raw, "generator")
        _copy(G_ema, ema, "G_ema")
    if "discriminator.pth" in found:
        d_config = DiscriminatorConfig.from_dict(config.discriminator)
        _copy(D, load_official_discriminator(found["discriminator.pth"], d_config), "discriminator")
    return "official " + ", ".join(sorted(found))
