"""Shared test setup: the official fixtures in ../shared, small models, seeded generators.

The fixtures are required: if `../shared/fixtures` (or $CIPS3D_SHARED/fixtures) is missing, the
equivalence tests fail loudly instead of being skipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cips3d import Generator3D, GeneratorConfig, generator_preset
from cips3d.convert.official import from_official
from cips3d.data.panorama import write_panorama_dataset
from cips3d.models.discriminator import DiscriminatorConfig

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


def official_key_list(*parts: str) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) rows of a fixture's `*_state_dict_keys.txt` listing."""
    rows = []
    for line in fixture_path(*parts).read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, _dtype, _numel = line.split("\t")
        rows.append((key, tuple(int(x) for x in shape.strip("()").split(",") if x.strip())))
    return rows


def small_d_config() -> DiscriminatorConfig:
    """The official small fixture discriminator's config."""
    kwargs = json.loads(fixture_path("official-d", "small_config.json").read_text())
    return DiscriminatorConfig.from_official_kwargs(kwargs["main_disc_kwargs"], kwargs["aux_disc_kwargs"])


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


def write_blobs(folder, count: int = 24, size: int = 32, seed: int = 0) -> None:
    """Coloured discs on a plain background: images a GAN can start to learn in a few steps."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for i in range(count):
        img = np.zeros((size, size, 3), np.uint8) + np.array([40, 60, 90], np.uint8)
        cy, cx, r = rng.integers(size // 3, 2 * size // 3, 2).tolist() + [
            int(rng.integers(size // 8, size // 4))
        ]
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(100, 255, 3)
        Image.fromarray(img).save(folder / f"{i:03d}.png")


@pytest.fixture(scope="session")
def blob_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blobs")
    write_blobs(folder)
    return folder


@pytest.fixture(scope="session")
def panorama_zip(tmp_path_factory):
    """24 procedural panoramas of 32 x 128 (the whole turn), in a dataset zip."""
    path = tmp_path_factory.mktemp("panoramas") / "pano.zip"
    write_panorama_dataset(path, count=24, height=32, width=128, progress=False)
    return path


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory, monkeypatch):
    """Each test caches (FID real statistics) in a folder of its own, never in the user's ~/.cache: a
    test must not find what another one, or an earlier run, left there."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
