"""One object from many cameras (yaw x pitch grids, the mirror-symmetry pair) and style mixing.

Views of a seed are rendered as `sample_seeds` renders that seed: the view at (yaw, pitch) is the
image `cips3d sample --seeds s --yaw yaw --pitch pitch` writes, jitter included.

Style mixing takes geometry (the NeRF styles) from one seed and appearance (the INR styles, all or
some layers) from another:

    mixed = mix_styles(styles_for_seeds(G, [1]), styles_for_seeds(G, [7]))            # shape 1, look 7
    mixed = mix_styles(styles_for_seeds(G, [1]), styles_for_seeds(G, [7]), ["512", "1024"])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cips3d import constants as K
from cips3d.config import PoseConfig, RenderConfig, is_real_number, is_whole_number, whole_count
from cips3d.errors import ConfigError
from cips3d.inference.sample import SampleBatch
from cips3d.io.images import make_grid
from cips3d.models.generator3d import Generator3D
from cips3d.outputs import Styles
from cips3d.rendering.cameras import Camera
from cips3d.seeding import GeneratorArg, check_generators, generators_for_seeds, seed_list
from cips3d.words import counted

MIRROR_YAWS = K.MIRROR_YAWS
"""The training previews' symmetry pair, about pi/2 -+ 0.13: a face should look mirrored."""
YAW_SWEEP = (1.0, math.pi - 1.0)
"""The official 'yaw' trajectory range (spec 6), used when only a number of yaws is given."""
PITCH_SWEEP = (K.PITCH_MEAN - 2 * K.PITCH_STDDEV, K.PITCH_MEAN + 2 * K.PITCH_STDDEV)
"""+-2 standard deviations of the FFHQ pitch prior, used when only a number of pitches is given."""


@dataclass(frozen=True)
class Views:
    """V renders of one object, in the order of the cameras."""

    img: torch.Tensor
    """[V, 3, H, W] CIPS-3D images in [-1, 1]."""
    aux_img: torch.Tensor
    """[V, 3, H, W] aux NeRF images in [-1, 1]."""
    depth: torch.Tensor
    """[V, 1, H, W] surface depth along the unit rays."""


def spread_angles(count: int, lo: float, hi: float) -> list[float]:
    """`count` evenly spaced angles from lo to hi (radians); one angle is the midpoint."""
    if not is_whole_number(count) or count < 1:  # 2.5 failed inside torch.linspace
        raise ConfigError(f"the number of views must be a whole number of 1 or more, got {count!r}.")
    if count == 1:
        return [(lo + hi) / 2]
    return torch.linspace(lo, hi, count, dtype=torch.float64).tolist()


def grid_cameras(yaws: Sequence[float], pitches: Sequence[float]) -> Camera:
    """Cameras for every (pitch, yaw), pitch-major: view m * N + n is (pitches[m], yaws[n]); one angle
    may be a plain number."""
    yaws, pitches = (_angle_list(v, name) for v, name in ((yaws, "yaws"), (pitches, "pitches")))
    yaw = torch.tensor(list(yaws), dtype=torch.float32).repeat(len(pitches))
    pitch = torch.tensor(list(pitches), dtype=torch.float32).repeat_interleave(len(yaws))
    return Camera.from_angles(yaw, pitch)


def _angle_list(angles: object, name: str) -> list[float]:
    """A list of angles: a number is one (a float was "not iterable"); anything else but numbers is named."""
    values = [angles] if is_real_number(angles) else angles
    if (
        isinstance(values, str)
        or not isinstance(values, Iterable)
        or not all(is_real_number(a) for a in values)
    ):
        raise ConfigError(f"{name} must be a list of angles in radians, got {angles!r}.")
    return list(values)


def seed_generators(G: Generator3D, seed: int, count: int) -> list[torch.Generator]:
    """`count` generators of `seed`, each past the seed's latents (z_nerf, z_inr), as `sample_seeds`
    leaves them, so each view draws the same render randomness as `sample` does for the seed."""
    generators = generators_for_seeds([seed] * count)
    for g in generators:
        G.sample_latents(1, g)
    return generators


@torch.no_grad()
def styles_for_seeds(G: Generator3D, seeds: Sequence[int], psi: float = 1.0) -> Styles:
    """Styles [len(seeds), D] of the seeds' latents (each seed's generator draws z_nerf, then z_inr)."""
    seeds = seed_list(seeds)  # an int had no len()
    z_nerf, z_inr = G.sample_latents(len(seeds), generators_for_seeds(seeds))
    return G.truncate(G.mapping(z_nerf, z_inr), psi)


@torch.no_grad()
def render_views(
    G: Generator3D,
    styles: Mapping[str, torch.Tensor],
    camera: Camera,
    render: RenderConfig,
    *,
    generators: GeneratorArg = None,
    batch_size: int = 8,
    on_rays: Callable[[int], None] | None = None,
) -> Views:
    """Render one object (styles of batch 1) from each of the V cameras, `batch_size` at a time.

    `generators` give the render randomness: one per view (a view then does not depend on
    `batch_size`), one for all views, or None for torch's default generator (render
    deterministically for reproducible views). `on_rays`: progress, as in `Generator3D.synthesis`.
    """
    G.check_styles(styles, None)  # numpy styles failed at .expand
    if any(s.shape[0] != 1 for s in styles.values()):
        raise ConfigError("render_views renders one object: give styles of batch size 1.")
    batch_size = whole_count(batch_size, "batch_size")
    check_generators(generators, camera.batch)
    parts = []
    for start in range(0, camera.batch, batch_size):
        index = list(range(start, min(start + batch_size, camera.batch)))
        batch = {k: v.expand(len(index), *v.shape[1:]) for k, v in styles.items()}
        gens = generators if not isinstance(generators, Sequence) else [generators[i] for i in index]
        out = G.synthesis(batch, camera.select(index), render, generator=gens, on_rays=on_rays)
        parts.append((out.img, out.aux_img, out.depth))
    img, aux, depth = (torch.cat(p) for p in zip(*parts, strict=True))
    return Views(img=img, aux_img=aux, depth=depth)


def render_multiview(
    G: Generator3D,
    styles: Mapping[str, torch.Tensor],
    yaws: Sequence[float],
    pitches: Sequence[float],
    render: RenderConfig,
    *,
    generators: GeneratorArg = None,
    batch_size: int = 8,
    on_rays: Callable[[int], None] | None = None,
) -> Views:
    """One object at N yaws x M pitches (radians): V = M * N views, pitch-major (see `grid_cameras`);
    `on_rays`: progress, as in `Generator3D.synthesis`."""
    cameras = grid_cameras(yaws, pitches)
    return render_views(
        G, styles, cameras, render, generators=generators, batch_size=batch_size, on_rays=on_rays
    )


def multiview_image(tiles: np.ndarray, num_yaws: int, pad: int = 2) -> np.ndarray:
    """uint8 [M * N, H, W, C] pitch-major tiles -> one image, rows = pitches, columns = yaws."""
    return make_grid(tiles, ncols=num_yaws, pad=pad)


def render_mirror_pair(
    G: Generator3D,
    styles: Mapping[str, torch.Tensor],
    render: RenderConfig,
    *,
    pitch: float = K.PITCH_MEAN,
    generators: GeneratorArg = None,
    on_rays: Callable[[int], None] | None = None,
) -> Views:
    """The object at yaw 1.44 and 1.70 (two views, in that order): a symmetric face mirrors itself."""
    return render_multiview(G, styles, MIRROR_YAWS, [pitch], render, generators=generators, on_rays=on_rays)


# --- style mixing -------------------------------------------------------------------------------
def resolve_inr_layers(names: Iterable[str]) -> list[str]:
    """INR layer names -> style names: a block name ('512') gives both of its layers
    ('inr_w512_0', 'inr_w512_1'); a style name is kept. ConfigError for anything else."""
    known = [f"inr_w{block}_{i}" for block in K.INR_BLOCK_NAMES for i in (0, 1)]
    # One name ("inr_w4_0" was read letter by letter), or several with commas as resolve_blend_layers reads.
    names = [part for part in names.split(",") if part.strip()] if isinstance(names, str) else names
    out: list[str] = []
    for raw in names:
        name = str(raw).strip()
        if name in K.INR_BLOCK_NAMES:
            out += [f"inr_w{name}_0", f"inr_w{name}_1"]
        elif name in known:
            out.append(name)
        else:
            raise ConfigError(
                f"unknown INR layer {name!r}; use block names ({', '.join(K.INR_BLOCK_NAMES)}) "
                "or style names such as inr_w512_0."
            )
    return list(dict.fromkeys(out))


def mix_styles(
    base: Mapping[str, torch.Tensor],
    other: Mapping[str, torch.Tensor],
    inr_layers: Iterable[str] | None = None,
) -> Styles:
    """Styles with the INR layers of `other` and everything else of `base`.

    Args:
        base: styles giving the geometry (every NeRF layer) and the INR layers not taken.
        other: styles giving the appearance; same batch size as `base`, or 1 (broadcast).
        inr_layers: block or style names to take from `other` (see `resolve_inr_layers`); None takes
            every INR layer.

    Returns:
        A new styles dict; tensors are shared, not copied.
    """
    for which, styles in (("base", base), ("other", other)):
        if not (
            isinstance(styles, Mapping)
            and styles
            and all(isinstance(v, torch.Tensor) for v in styles.values())
        ):
            raise ConfigError(
                f"the {which} styles must be a dict of [B, D] tensors by layer name (G.mapping's)."
            )
    if inr_layers is None:
        taken = {name for name in base if name.startswith("inr_")}
    else:
        taken = set(resolve_inr_layers(inr_layers))
    missing = sorted(name for name in taken if name not in other)
    if missing:
        more = ", ..." if len(missing) > 3 else ""
        raise ConfigError(
            f"the other styles lack {counted(len(missing), 'layer')}: {', '.join(missing[:3])}{more}."
        )
    batch = next(iter(base.values())).shape[0]
    sizes = sorted({int(other[name].shape[0]) for name in taken} - {1, batch})
    if sizes:
        raise ConfigError(
            f"the other styles must have batch 1{'' if batch == 1 else f' or {batch}'} like the base ones, "
            f"got {sizes[0]}."
        )
    return {
        name: (other[name].expand(batch, *other[name].shape[1:]) if name in taken else value)
        for name, value in base.items()
    }


@torch.no_grad()
def sample_mixed_seeds(
    G: Generator3D,
    seeds: Sequence[int],
    appearance_seeds: Sequence[int],
    *,
    render: RenderConfig,
    pose: PoseConfig,
    psi: float = 1.0,
    inr_layers: Iterable[str] | None = None,
    batch_size: int = 4,
    on_rays: Callable[[int], None] | None = None,
) -> Iterator[SampleBatch]:
    """Like `sample_seeds`, with the INR styles (all, or `inr_layers`) from `appearance_seeds[i]`.

    Seed i keeps its geometry, its camera (a random pose is still drawn from its own generator) and
    its render randomness, so an appearance seed equal to the seed gives exactly the unmixed image.
    `appearance_seeds` has one entry per seed, or one for all.
    """
    seeds, appearance_seeds = seed_list(seeds), seed_list(appearance_seeds)  # an int had no len()
    if len(appearance_seeds) not in (1, len(seeds)):
        raise ConfigError(
            f"give one appearance seed, or one per seed ({len(seeds)}), not {len(appearance_seeds)}."
        )
    layers = None if inr_layers is None else resolve_inr_layers(inr_layers)
    partners = list(appearance_seeds) * len(seeds) if len(appearance_seeds) == 1 else list(appearance_seeds)
    batch_size = whole_count(batch_size, "batch_size")  # -1 yielded nothing, 0 a ValueError from range
    for start in range(0, len(seeds), batch_size):
        batch = list(seeds[start : start + batch_size])
        generators = generators_for_seeds(batch)
        z_nerf, z_inr = G.sample_latents(len(batch), generators)
        looks = styles_for_seeds(G, partners[start : start + len(batch)])
        styles = G.truncate(mix_styles(G.mapping(z_nerf, z_inr), looks, layers), psi)
        camera = G.sample_cameras(pose, len(batch), generators)
        out = G.synthesis(styles, camera, render, generator=generators, on_rays=on_rays)
        yield SampleBatch(seeds=batch, output=out)
