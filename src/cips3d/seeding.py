"""Random draws from explicit generators, and per-seed generators (one image per seed, any batch)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import torch

from cips3d.config import is_whole_number
from cips3d.devices import usable_device
from cips3d.errors import ConfigError
from cips3d.words import counted

MAX_SEED = 2**63 - 1
"""The largest seed of a `torch.Generator` as Python gives it (manual_seed overflows past 2^64 - 1 and
wraps negative ones; seeds here are 0 to 2^63 - 1, the range of a signed 64-bit integer)."""


def seed_range(limit: int = MAX_SEED) -> str:
    """How error messages name the seeds a command takes: 'from 0 to 2^63 - 1' (limits are 2^k - 1)."""
    return f"from 0 to 2^{limit.bit_length()} - 1"


MAX_SEEDS = 1_000_000
"""The most seeds one call takes (`parse_seeds` reads at most as many from text)."""

GeneratorArg = torch.Generator | Sequence[torch.Generator] | None
"""One generator for the whole batch, one per batch element, or None (torch's default generator)."""


def check_generator(generator: object) -> torch.Generator | None:
    """`generator` when it is None or one `torch.Generator`; else a `ConfigError` (a seed given where a
    generator goes failed deep in torch, listing every overload of randn)."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    hint = " (seeded_generator(seed) makes one from a seed)" if is_whole_number(generator) else ""
    raise ConfigError(f"generator must be a torch.Generator or None, got {type(generator).__name__}{hint}.")


def draw(kind: str, shape: tuple[int, ...], generator: torch.Generator | None, device) -> torch.Tensor:
    """torch.rand ('rand') or torch.randn ('randn') of `shape` on `device`.

    A generator draws on its own device and the result is moved, so CPU per-seed generators give the
    same numbers whatever device renders.
    """
    check_generator(generator)
    fn = torch.rand if kind == "rand" else torch.randn
    if generator is None:
        return fn(shape, device=device)
    return fn(shape, generator=generator, device=generator.device).to(device)


def draw_batch(kind: str, shape: tuple[int, ...], generator: GeneratorArg, device) -> torch.Tensor:
    """Like `draw`, for a batch-first shape; with a list of generators row b comes from generator b."""
    if generator is None or isinstance(generator, torch.Generator):
        return draw(kind, shape, generator, device)
    check_generators(generator, shape[0])
    return torch.cat([draw(kind, (1, *shape[1:]), g, device) for g in generator])


def check_generators(generator: GeneratorArg, batch: int) -> None:
    """A `ConfigError` unless `generator` is None, one `torch.Generator`, or a list of `batch` of them."""
    if generator is None or isinstance(generator, torch.Generator):
        return
    if not isinstance(generator, Sequence) or not all(isinstance(g, torch.Generator) for g in generator):
        seeds = isinstance(generator, Sequence) and any(is_whole_number(g) for g in generator)
        hint = " of seeds (generators_for_seeds(seeds) makes one generator per seed)" if seeds else ""
        raise ConfigError(
            f"generator must be a torch.Generator or a list of them, got {type(generator).__name__}{hint}."
        )
    if len(generator) != batch:
        given, images = counted(len(generator), "generator"), counted(batch, "image")
        raise ConfigError(f"got {given} for {images}; give one per image.")


def seed_list(seeds: object) -> list:
    """`seeds` as a list; a `ConfigError` for a string ("0-3" was read as the seeds '0', '-', '3': text
    is `parse_seeds`' job) or anything that is not a collection of them."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise ConfigError(
            f"seeds must be a list of whole numbers, got {seeds!r} (parse_seeds reads text such as '0-3')."
        )
    if isinstance(seeds, torch.Tensor) and not seeds.is_floating_point() and not seeds.is_complex():
        seeds = seeds.reshape(-1).tolist()  # torch.arange(3): its elements are 0-d tensors, not numbers
    listed = list(itertools.islice(seeds, MAX_SEEDS + 1))  # range(10**12) ended in a bare MemoryError
    if len(listed) > MAX_SEEDS:
        raise ConfigError(f"more than {MAX_SEEDS:,} seeds were given; render them in parts.")
    return [int(s) if is_whole_number(s) else s for s in listed]  # numpy's integers as Python's


def generators_for_seeds(seeds: Iterable[int], device: str = "cpu") -> list[torch.Generator]:
    """One generator per seed: image i depends only on seeds[i], whatever the batch it is rendered in.
    Seeds are whole numbers from 0 to MAX_SEED (torch would wrap -1 to 2**64 - 1 and 1.5 to 1)."""
    seeds = seed_list(seeds)
    wrong = [s for s in seeds if not is_whole_number(s) or not 0 <= s <= MAX_SEED]
    if wrong:
        raise ConfigError(f"seeds must be whole numbers {seed_range()}, got {wrong[0]!r}.")
    device = usable_device(device)  # 'cuda' without a GPU: one sentence, not torch's paragraph
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


def check_seed(seed: int, name: str = "seed", maximum: int = MAX_SEED) -> int:
    """`seed` as an int; a ConfigError naming `name` unless it is a whole number from 0 to `maximum`
    (MAX_SEED, or a smaller 2^k - 1: the viewers' pages count seeds in a browser's exact integers)."""
    if not (is_whole_number(seed) and 0 <= seed <= maximum):
        raise ConfigError(f"{name} must be a whole number {seed_range(maximum)}, got {seed!r}.")
    return int(seed)


def seeded_generator(seed: int, device: str = "cpu") -> torch.Generator:
    """A generator seeded with `seed`, checked (every function of the API that takes a seed draws
    through this or `generators_for_seeds`, so that -1 is refused everywhere rather than wrapped)."""
    return torch.Generator(device=usable_device(device)).manual_seed(check_seed(seed))
