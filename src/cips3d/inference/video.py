"""Videos from a generator: frames rendered one at a time along a trajectory, and latent walks.

    styles, gen = seed_styles(G, seed=3, psi=0.7)
    traj = make_trajectory("orbit", num_frames=60)
    render = RenderConfig(img_size=256, deterministic=True)
    frames = video_frames(G, styles, traj, render, panels=("image", "depth"), text=True)
    write_video(frames, "seed0003.mp4", fps=30)  # each frame is rendered when the writer asks for it

Each frame is one `G.synthesis` call for a batch of 1 at the frame's camera and fov, chunked by
`render.chunk_rows`, so memory does not grow with the image size or the number of frames. With
`render.deterministic` (recommended) there are no random draws and so no flicker; otherwise the
official stochastic sampler draws from `generator`, frame after frame.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from cips3d.config import RenderConfig, check_psi, given_or_default, whole_count
from cips3d.errors import ConfigError
from cips3d.inference.geometry import normals_image
from cips3d.inference.trajectories import Trajectory, check_trajectory
from cips3d.io.images import colorize_depth, to_uint8
from cips3d.models.generator3d import Generator3D
from cips3d.outputs import GeneratorOutput, Styles
from cips3d.seeding import seeded_generator

PANELS = ("image", "aux", "depth", "normals")
"""What a frame can show, left to right in the order asked: the CIPS-3D image, the aux NeRF image,
the colour-mapped depth, the normals from the depth (as `cips3d sample --normals` writes them)."""
SPACES = ("z", "w")
METHODS = ("slerp", "lerp")
PARALLEL_EPS = 1e-6  # below this sin(angle) two latents count as parallel and slerp becomes lerp


def check_panels(panels: Sequence[str]) -> tuple[str, ...]:
    """The panels as a tuple (one name may be a string: "image" was read letter by letter); an empty
    list or an unknown name is a ConfigError."""
    panels = (panels,) if isinstance(panels, str) else panels
    if not isinstance(panels, Iterable):  # None: a TypeError from iterating it
        raise ConfigError(f"panels must be a list of {', '.join(PANELS)}; got {panels!r}.")
    panels = [str(p) for p in panels]  # a numpy array of names too
    unknown = [p for p in panels if p not in PANELS]
    if unknown or not panels:
        raise ConfigError(f"panels must be a non-empty list of {', '.join(PANELS)}; got {list(panels)}.")
    if len(set(panels)) < len(panels):  # 'depth,depth' rendered the same panel twice
        raise ConfigError(f"panels must name each panel once; got {list(panels)}.")
    return tuple(panels)


def frame_size(render: RenderConfig, panels: Sequence[str]) -> tuple[int, int]:
    """(width, height) in pixels of a frame: the panels sit side by side."""
    return render.img_size * len(check_panels(panels)), render.img_size


# --- latents and styles ----------------------------------------------------------------------------
def seed_latents(G: Generator3D, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
    """(z_nerf [1, 256], z_inr [1, 512]) of `seed`, as `cips3d sample` draws them, and the seed's
    generator after those draws (it supplies a stochastic render's draws next)."""
    generator = seeded_generator(seed)
    z_nerf, z_inr = G.sample_latents(1, [generator])
    return z_nerf, z_inr, generator


@torch.no_grad()
def seed_styles(G: Generator3D, seed: int, psi: float = 1.0) -> tuple[Styles, torch.Generator]:
    """Truncated styles (each [1, D]) of `seed`, and its generator (see `seed_latents`)."""
    z_nerf, z_inr, generator = seed_latents(G, seed)
    return G.truncate(G.mapping(z_nerf, z_inr), psi), generator


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """(1 - t) a + t b, written so that t = 0 gives a and t = 1 gives b exactly."""
    return (1 - t) * a + t * b


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation of [..., D] vectors along the last dimension (lengths interpolate too).

    With omega the angle between a and b: sin((1 - t) omega) / sin(omega) a + sin(t omega) / sin(omega) b;
    t = 0 and t = 1 give a and b exactly; nearly parallel vectors fall back to `lerp`.
    """
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1).unsqueeze(-1).clamp(-1, 1)
    omega = torch.arccos(cos)
    sin = torch.sin(omega)
    parallel = sin.abs() < PARALLEL_EPS
    safe = torch.where(parallel, torch.ones_like(sin), sin)
    wa = torch.where(parallel, torch.full_like(sin, 1 - t), torch.sin((1 - t) * omega) / safe)
    wb = torch.where(parallel, torch.full_like(sin, t), torch.sin(t * omega) / safe)
    return wa * a + wb * b


class WalkSteps(Sequence[tuple[int, float]]):
    """(key k, fraction t towards key k + 1) of every frame of a walk: `steps_between` frames from each
    key to the next, then the last key; (num_keys - 1) * steps_between + 1 frames in all. Computed per
    frame: a list of them all took 24 GB for a walk of 10^9 steps, before any frame was asked for."""

    def __init__(self, num_keys: int, steps_between: int) -> None:
        self.num_keys, self.steps_between = num_keys, steps_between

    def __len__(self) -> int:
        return (self.num_keys - 1) * self.steps_between + 1

    def __getitem__(self, index):  # type: ignore[override]
        """The (key, fraction) of frame `index` (an int: negative counts from the end), or a list of
        them for a slice, as the list this replaced gave."""
        n = len(self)
        if isinstance(index, slice):
            return [self[i] for i in range(n)[index]]
        index = operator.index(index)  # numpy's and 0-d torch integers too; a float: TypeError
        if not -n <= index < n:
            raise IndexError(f"frame {index} of a walk of {n} frames.")
        index %= n
        if index == n - 1:
            return self.num_keys - 1, 0.0
        k, j = divmod(index, self.steps_between)
        return k, j / self.steps_between

    def __eq__(self, other: object) -> bool:  # as the list this replaced compared
        if isinstance(other, WalkSteps):
            return (self.num_keys, self.steps_between) == (other.num_keys, other.steps_between)
        return isinstance(other, Sequence) and len(other) == len(self) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  (equal to lists, so unhashable as they are)


def walk_steps(num_keys: int, steps_between: int) -> WalkSteps:
    """The (key, fraction) of every frame of a walk (`WalkSteps`)."""
    return WalkSteps(num_keys, steps_between)


class LatentWalk(Sequence[Styles]):
    """The styles of each frame of a walk through the latents of `seeds`, computed when asked
    (so a long walk holds only the keys). Frame k * steps_between is seed k's own styles, bit for bit.

    Args:
        G: the generator.
        seeds: the key latents, in walking order (at least two).
        steps_between: frames from one key to the next (>= 1).
        space: 'z' interpolates z_nerf and z_inr, then maps and truncates; 'w' maps and truncates
            each key, then interpolates every layer's style vector.
        method: 'slerp' or 'lerp'.
        psi: truncation in [0, 1].
    """

    def __init__(
        self,
        G: Generator3D,
        seeds: Sequence[int],
        *,
        steps_between: int,
        space: str = "z",
        method: str = "slerp",
        psi: float = 1.0,
    ) -> None:
        _check_walk(seeds, steps_between, space, method, psi)
        self.G, self.space, self.psi = G, space, psi
        self.interpolate = slerp if method == "slerp" else lerp
        self.steps = walk_steps(len(seeds), steps_between)
        if space == "z":
            self.keys: list = [seed_latents(G, s)[:2] for s in seeds]
        else:
            self.keys = [seed_styles(G, s, psi)[0] for s in seeds]

    def __len__(self) -> int:
        return len(self.steps)

    @torch.no_grad()
    def __getitem__(self, index: int) -> Styles:  # type: ignore[override]
        k, t = self.steps[index]
        a = self.keys[k]
        if self.space == "w":
            if t == 0:
                return dict(a)
            b = self.keys[k + 1]
            return {name: self.interpolate(a[name], b[name], t) for name in a}
        if t == 0:
            z_nerf, z_inr = a
        else:
            b = self.keys[k + 1]
            z_nerf, z_inr = self.interpolate(a[0], b[0], t), self.interpolate(a[1], b[1], t)
        return self.G.truncate(self.G.mapping(z_nerf, z_inr), self.psi)


def _check_walk(seeds: Sequence[int], steps_between: int, space: str, method: str, psi: float) -> None:
    if len(seeds) < 2:
        raise ConfigError(f"a latent walk needs at least two seeds, got {list(seeds)}.")
    whole_count(steps_between, "steps_between")
    if space not in SPACES:
        raise ConfigError(f"unknown latent space {space!r}; known: {', '.join(SPACES)}.")
    if method not in METHODS:
        raise ConfigError(f"unknown interpolation {method!r}; known: {', '.join(METHODS)}.")
    check_psi(psi)


# --- rendering -------------------------------------------------------------------------------------
def frame_styles(styles: Mapping[str, torch.Tensor] | Sequence[Styles], num_frames: int) -> Sequence[Styles]:
    """One styles dict per frame: the same one for every frame, or the given sequence (checked)."""
    if isinstance(styles, Mapping):
        return [dict(styles)] * num_frames
    if not isinstance(styles, Sequence):
        raise ConfigError(
            f"styles must be a dict of tensors by layer or a sequence of them, got {type(styles).__name__}."
        )
    if len(styles) != num_frames:
        raise ConfigError(f"got styles for {len(styles)} frames but the trajectory has {num_frames}.")
    return styles


@torch.no_grad()
def render_trajectory(
    G: Generator3D,
    styles: Mapping[str, torch.Tensor] | Sequence[Styles],
    trajectory: Trajectory,
    render: RenderConfig,
    *,
    generator: torch.Generator | None = None,
) -> Iterator[GeneratorOutput]:
    """Render the frames one at a time, lazily: frame i is exactly
    `G.synthesis(styles_i, camera_i, replace(render, fov=fov_i), generator=generator)`.

    Args:
        G: the generator (its device and dtype are used).
        styles: [1, D] style vectors by layer, for every frame, or a sequence of them, one per frame
            (a `LatentWalk`, for example).
        trajectory: the N cameras and fields of view (degrees).
        render: size, sampling and chunking; its fov is replaced by each frame's.
        generator: source of the stochastic sampler's draws, one frame after the other (unused when
            `render.deterministic`; None uses torch's default generator).

    Yields:
        N outputs of batch 1 (img, aux_img, depth, ... as `Generator3D.synthesis` returns them).
    """
    check_trajectory(trajectory)
    render = given_or_default(render, RenderConfig, "render")
    per_frame = frame_styles(styles, trajectory.num_frames)
    # One set of styles for every frame: fold it into the weights once, not once per frame.
    shared = G.modulate(styles, render) if isinstance(styles, Mapping) else None
    for i in range(trajectory.num_frames):
        camera, fov = trajectory.frame(i)
        frame_render = replace(render, fov=fov)
        yield G.synthesis(per_frame[i], camera, frame_render, generator=generator, modulation=shared)


def frame_label(yaw: float, pitch: float, fov: float) -> str:
    """The official overlay text: pitch and yaw in radians, fov in degrees."""
    return f"pitch {pitch:.2f}\nyaw {yaw:.2f}\nfov {fov:.2f}"


def draw_label(frame: np.ndarray, text: str) -> np.ndarray:
    """uint8 [H, W, 3] -> a copy with `text` in white, outlined in black, at the top left (PIL's
    default font, scaled with the frame height where this Pillow can)."""
    image = Image.fromarray(frame)
    size = max(6, frame.shape[0] // 15)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        font = ImageFont.load_default()
    stroke = max(1, size // 12)
    ImageDraw.Draw(image).text(
        (stroke + 1, stroke),
        text,
        fill=(255, 255, 255),
        font=font,
        stroke_width=stroke,
        stroke_fill=(0, 0, 0),
    )
    return np.asarray(image).copy()


def compose_frame(
    output: GeneratorOutput,
    render: RenderConfig,
    panels: Sequence[str] = ("image",),
    label: str | None = None,
) -> np.ndarray:
    """The first image of `output` as one uint8 [H, len(panels) * W, 3] frame, panels side by side.

    'image' is `output.img`, 'aux' `output.aux_img`, 'depth' `output.depth` colour-mapped between
    `render.ray_start` (bright) and `render.ray_end` (dark), 'normals' the camera-space normals of the
    depth as colours (n + 1) / 2. `label`, if given, is drawn on top.
    """
    tiles = []
    for panel in check_panels(panels):
        if panel == "image":
            tiles.append(to_uint8(output.img[0]))
        elif panel == "aux":
            tiles.append(to_uint8(output.aux_img[0]))
        elif panel == "normals":
            tiles.append(normals_image(output.depth[:1], render.fov)[0])
        else:
            tiles.append(colorize_depth(output.depth[0], render.ray_start, render.ray_end))
    frame = np.concatenate(tiles, axis=1)
    return draw_label(frame, label) if label else frame


def video_frames(
    G: Generator3D,
    styles: Mapping[str, torch.Tensor] | Sequence[Styles],
    trajectory: Trajectory,
    render: RenderConfig,
    *,
    panels: Sequence[str] = ("image",),
    text: bool = False,
    generator: torch.Generator | None = None,
    progress: bool = False,
    desc: str = "video",
) -> Iterator[np.ndarray]:
    """uint8 [H, len(panels) * W, 3] frames along `trajectory`, rendered as they are asked for
    (hand them to `write_video`: an mp4 never holds more than one frame).

    `text` writes each frame's pitch, yaw (the position's angles, radians) and fov (degrees) on it;
    `progress` shows a tqdm bar over the frames, titled `desc`. See `render_trajectory` for the
    other arguments; each frame is rendered, and its normals computed, at the trajectory's fov.
    """
    panels = check_panels(panels)
    check_trajectory(trajectory)
    render = given_or_default(render, RenderConfig, "render")  # None failed after the first frame
    yaws, pitches = trajectory.angles()
    bar = tqdm(total=trajectory.num_frames, unit="frame", desc=desc, disable=not progress)
    try:
        outputs = render_trajectory(G, styles, trajectory, render, generator=generator)
        for i, output in enumerate(outputs):
            label = frame_label(float(yaws[i]), float(pitches[i]), trajectory.fov[i]) if text else None
            at_fov = replace(render, fov=trajectory.fov[i])  # the normals are those of this frame's rays
            yield compose_frame(output, at_fov, panels, label)
            bar.update(1)
    finally:
        bar.close()


def side_by_side_frames(
    models: Sequence[Generator3D],
    seed: int,
    trajectory: Trajectory,
    render: RenderConfig,
    *,
    psi: float = 1.0,
    panels: Sequence[str] = ("image",),
) -> Iterator[np.ndarray]:
    """Frames with one column per model, each rendering `seed`'s own latents along `trajectory`
    (deterministic renders give columns that differ only by the models' weights)."""
    if not models or not all(isinstance(G, Generator3D) for G in models):  # [] yielded no frame
        raise ConfigError(
            f"side_by_side_frames needs a list of one or more Generator3D models, got {models!r:.80}."
        )
    streams = []
    for G in models:
        styles, generator = seed_styles(G, seed, psi)
        streams.append(video_frames(G, styles, trajectory, render, panels=panels, generator=generator))
    for columns in zip(*streams, strict=True):
        yield np.concatenate(columns, axis=1)
