"""Render one image per seed, in batches, reproducibly: seed s gives the same image at any batch size
(up to float rounding: batched products round a few 1e-8 differently)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from cips3d.config import PoseConfig, RenderConfig, whole_count
from cips3d.errors import ConfigError
from cips3d.models.generator3d import Generator3D
from cips3d.outputs import GeneratorOutput
from cips3d.seeding import MAX_SEED, MAX_SEEDS, generators_for_seeds, seed_list


@dataclass(frozen=True)
class SampleBatch:
    """The seeds of one batch and what the generator made for them (row i belongs to seeds[i])."""

    seeds: list[int]
    output: GeneratorOutput


_SEED_PART = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_seeds(text: str, unique: bool = True) -> list[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11] (ranges inclusive, order kept, duplicates dropped unless
    not `unique`: a walk 0,5,0 returns to its start); a `ConfigError` (a user's mistake, also a
    ValueError) for anything else."""
    seeds: list[int] = []
    for item in text.split(","):  # spaces around a comma or a dash are fine; "1 2" was read as 12
        part = re.sub(r"\s*-\s*", "-", item.strip())
        match = _SEED_PART.match(part)
        if not match:
            raise ConfigError(f"cannot read seeds {text!r}: use non-negative numbers and ranges separated by "
                              "commas, such as 0-15,20.")  # fmt: skip
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) is not None else lo
        if hi < lo:
            raise ConfigError(f"seed range {part!r} runs backwards.")
        if hi > MAX_SEED:
            raise ConfigError(f"seed {hi} is larger than 2^63 - 1.")
        if len(seeds) + hi - lo + 1 > MAX_SEEDS:
            raise ConfigError(f"{text!r} asks for more than {MAX_SEEDS:,} seeds.")
        seeds.extend(range(lo, hi + 1))
    return list(dict.fromkeys(seeds)) if unique else seeds


@torch.no_grad()
def sample_seeds(
    G: Generator3D,
    seeds: Sequence[int],
    *,
    render: RenderConfig,
    pose: PoseConfig,
    psi: float = 1.0,
    batch_size: int = 4,
    on_rays: Callable[[int], None] | None = None,
) -> Iterator[SampleBatch]:
    """Yield batches of renders. Each seed's generator draws, in order: z_nerf, z_inr, the camera
    (when `pose` is random), then the render draws, so an image depends only on its seed. `on_rays`:
    progress, as in `Generator3D.synthesis`."""
    batch_size = whole_count(batch_size, "batch_size")
    seeds = seed_list(seeds)
    for start in range(0, len(seeds), batch_size):
        batch = seeds[start : start + batch_size]
        generators = generators_for_seeds(batch)
        z_nerf, z_inr = G.sample_latents(len(batch), generators)
        out = G(z_nerf, z_inr, pose=pose, render=render, psi=psi, generator=generators, on_rays=on_rays)
        yield SampleBatch(seeds=batch, output=out)
