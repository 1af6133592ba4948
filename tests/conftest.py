"""Shared test setup: the official fixtures in ../shared, small models, seeded generators.

The fixtures are required: if `../shared/fixtures` (or $CIPS3D_SHARED/fixtures) is missing, the
equivalence tests fail loudly instead of being skipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from cips3d import Generator3D, GeneratorConfig, generator_preset
from cips3d.convert.official import from_official

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CIPS3D_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"

torch.set_num_threads(min(2, torch.get_num_threads()))


def fixture_path(*parts: str) -> Path:
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(
            f"official fixture {path} is missing: put the shared folder beside the repo or set CIPS3D_SHARED"
        )
    return path


def load_fixture(*parts: str):
    return torch.load(fixture_path(*parts), map_location="cpu", weights_only=True)


@pytest.fixture(scope="session")
def small_config() -> GeneratorConfig:
    """The official small fixture generator's config."""
    kwargs = json.loads(fixture_path("official", "small_config.json").read_text())["constructor_kwargs"]
    return GeneratorConfig.from_official_kwargs(kwargs)


def official_generator(config: GeneratorConfig, state_file: tuple[str, ...]) -> Generator3D:
    """A generator of `config` with the official fixture weights in `state_file`."""
    G = Generator3D(config, initialize=False)
    ours = from_official(load_fixture(*state_file), config, G.state_dict())
    G.load_state_dict(ours, strict=False)
    G.update_truncation_mean()
    return G.eval()


@pytest.fixture(scope="session")
def small_G(small_config) -> Generator3D:
    return official_generator(small_config, ("official", "small_G_state_dict.pt"))


@pytest.fixture(scope="session")
def dense_G(small_config) -> Generator3D:
    return official_generator(small_config, ("official-dense", "small_G_dense_state_dict.pt"))


@pytest.fixture(scope="session")
def tiny_G() -> Generator3D:
    return Generator3D(generator_preset("tiny")).eval()
