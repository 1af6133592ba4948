"""A walk through the latents of a 2D CIPS model: the styles of every frame of a video that goes from
one seed's image to the next (`cips3d sample2d --interpolate`).

    for w in walk_styles_2d(G, seeds=[0, 5, 9], steps_between=30, psi=0.8):
        ...  # [1, D]; frame k * steps_between is seed k's own style

z is interpolated (slerp, as the 3-D `LatentWalk` does by default), then mapped and truncated.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from cips3d.config import check_psi, whole_count
from cips3d.errors import ConfigError
from cips3d.inference.video import slerp, walk_steps
from cips3d.models.generator2d import Generator2D
from cips3d.seeding import seed_list, seeded_generator


@torch.no_grad()
def walk_styles_2d(
    G: Generator2D,
    seeds: Sequence[int],
    steps_between: int,
    psi: float = 1.0,
    mean: torch.Tensor | None = None,
) -> Iterator[torch.Tensor]:
    """w [1, D] of each frame: `steps_between` frames from each seed to the next, then the last seed
    ((len(seeds) - 1) * steps_between + 1 frames). Seeds draw z as `cips3d sample2d` does; `mean` is
    the truncation centre (`G.mean_style()`, computed here when psi < 1 and none is given)."""
    if not isinstance(G, Generator2D):  # a 3D model failed inside its mapping
        raise ConfigError(f"walk_styles_2d walks a 2D CIPS model (Generator2D), got {type(G).__name__}.")
    steps_between = whole_count(steps_between, "steps_between")  # 2.5 was a TypeError from range()
    seeds = seed_list(seeds)  # an iterator had no len()
    check_psi(psi)
    if len(seeds) < 2:
        raise ConfigError(f"a walk needs two seeds or more, got {seeds}.")
    keys = [G.sample_latents(1, seeded_generator(seed)) for seed in seeds]
    if psi == 1:
        mean = None
    elif mean is None:
        mean = G.mean_style()
    for k, t in walk_steps(len(keys), steps_between):
        z = keys[k] if t == 0 else slerp(keys[k], keys[k + 1], t)
        w = G.mapping(z)
        yield w if mean is None else G.truncate(w, psi, mean)
