"""Render rays through a field: stratified samples -> field -> (importance samples -> field) -> composite.

This is the one rendering path (spec 2.3-2.6). The field is an argument, so this module owns no weights;
all random numbers arrive in a `RenderDraws`, drawn by `draw_render_randomness` or injected by the caller.
Chunking over rays is decided here too (`ray_chunks`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace

import torch

from cips3d import constants as K
from cips3d.config import RenderConfig
from cips3d.errors import ConfigError
from cips3d.rendering.compositing import (
    Composite,
    alphas_from_sigma,
    composite,
    sample_deltas,
    weights_from_alphas,
)
from cips3d.rendering.rays import rotate_directions, transform_points
from cips3d.rendering.sampling import coarse_depths, importance_depths, jitter_offsets
from cips3d.seeding import GeneratorArg, draw_batch

FieldFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""points [B, N, 3] -> (features [B, N, C], raw sigma [B, N, 1])."""


@dataclass(frozen=True)
class RenderDraws:
    """The random numbers of one rendering call. A field left None is drawn (or, in deterministic
    mode, takes its deterministic value: no jitter, evenly spaced importance samples, no noise).

    Shapes (B batch, R = H*W rays in row-major pixel order, S = num_steps):
    a trailing singleton dimension is accepted, and `importance_u` may be [B*R, S] (batch-major rows),
    as the official code draws it.
    """

    jitter_u: torch.Tensor | None = None
    """[B, R, S] U(0, 1): the stratified jitter offset is (u - 0.5) * spacing."""
    importance_u: torch.Tensor | None = None
    """[B, R, S] U(0, 1): the inverse-CDF draws of hierarchical sampling."""
    coarse_noise: torch.Tensor | None = None
    """[B, R, S] N(0, 1): density noise of the coarse composite (times nerf_noise)."""
    fine_noise: torch.Tensor | None = None
    """[B, R, 2S] N(0, 1): density noise of the final composite over coarse + fine samples."""
    yaw_draw: torch.Tensor | None = None
    """[B] raw draw of the yaw sampler (see `sample_pose_angles`)."""
    pitch_draw: torch.Tensor | None = None
    """[B] raw draw of the pitch sampler."""
    grad_order: torch.Tensor | None = None
    """[R] a permutation of the rays; with `grad_rays` = G the first G render with gradients."""

    @classmethod
    def from_official_order(
        cls, tensors: Sequence[torch.Tensor | None], *, hierarchical: bool, camera_drawn: bool = True
    ) -> RenderDraws:
        """The draws of one official whole-batch call, in the order the official code makes them:
        jitter u; yaw and pitch randn (when the camera is sampled, not explicit); coarse density noise;
        then, when hierarchical, importance u and the final density noise. A None entry (a draw that
        was not recorded) stays None. Exactly that many tensors are expected.
        """
        names = ["jitter_u"] + (["yaw_draw", "pitch_draw"] if camera_drawn else []) + ["coarse_noise"]
        names += ["importance_u", "fine_noise"] if hierarchical else []
        if len(tensors) != len(names):
            raise ValueError(
                f"an official call of this kind makes {len(names)} draws ({names}), got {len(tensors)}."
            )
        # Without importance sampling the coarse composite is the final one, so its noise is coarse_noise.
        return cls(**dict(zip(names, tensors, strict=True)))

    def normalized(self, batch: int, rays: int, steps: int) -> RenderDraws:
        """Check every given draw against (B, R, S) and reshape it to its canonical shape.

        A draw [B, R, S] may also come as [B, R, S, 1], as the official [B*R, S] (batch-major rows) or as
        [B, R*S] (ray-major samples); any other layout is refused, even with the right number of values
        (a [B, S, R] tensor would otherwise be read as the wrong draws). A given `grad_order` must be a
        permutation of the R rays (checked where free: on the CPU).
        """
        expected = {
            "jitter_u": (batch, rays, steps),
            "importance_u": (batch, rays, steps),
            "coarse_noise": (batch, rays, steps),
            "fine_noise": (batch, rays, 2 * steps),
        }
        out = {}
        for name, shape in expected.items():
            value = getattr(self, name)
            if value is not None:
                _check_draw_values(name, value)
                b, r, s = shape
                if tuple(value.shape) not in (shape, (*shape, 1), (b * r, s), (b, r * s), (b, r * s, 1)):
                    got = tuple(value.shape)
                    raise ConfigError(
                        f"draws.{name} has shape {got}, expected {shape} (batch, rays, samples)."
                    )
                value = value.reshape(shape)
            out[name] = value
        check_ray_order(self.grad_order, rays)
        return replace(self, **out)

    def to(self, device: torch.device | str, dtype: torch.dtype) -> RenderDraws:
        """All given draws on `device` in floating type `dtype`."""
        return replace(
            self,
            **{
                f.name: getattr(self, f.name).to(device, dtype)
                for f in fields(self)
                if getattr(self, f.name) is not None and f.name != "grad_order"
            },
        )

    def select_batch(self, index: int) -> RenderDraws:
        """The draws of image `index` (canonical shapes), keeping a batch dimension of 1."""
        return replace(
            self,
            **{
                f.name: getattr(self, f.name)[index : index + 1]
                for f in fields(self)
                if f.name != "grad_order" and getattr(self, f.name) is not None
            },
        )

    def rays(self, index: slice) -> RenderDraws:
        """The draws of the rays at `index` (canonical shapes only)."""
        return replace(
            self,
            **{
                f.name: getattr(self, f.name)[:, index]
                for f in fields(self)
                if f.name not in ("yaw_draw", "pitch_draw", "grad_order")
                and getattr(self, f.name) is not None
            },
        )


UNIFORM_DRAWS = ("jitter_u", "importance_u")
"""The draws that are U(0, 1) numbers; the others are standard normal."""


def _check_draw_values(name: str, value: object) -> None:
    """A `ConfigError` unless a given draw is a floating tensor of finite values, within [0, 1] for a
    uniform one (checked where free: CPU tensors). NaN draws rendered images of NaN, and a jitter of 5
    put every sample past the ray's far bound, without a word."""
    if not (isinstance(value, torch.Tensor) and value.is_floating_point()):
        kind = type(value).__name__ if not isinstance(value, torch.Tensor) else f"tensor of {value.dtype}"
        raise ConfigError(f"draws.{name} must be a floating-point tensor, got a {kind}.")
    if value.device.type != "cpu" or value.numel() == 0:
        return
    if name in UNIFORM_DRAWS:
        if not bool(((value >= 0) & (value <= 1)).all()):  # NaN fails too
            raise ConfigError(f"draws.{name} holds values outside [0, 1] (or NaN); it takes U(0, 1) draws.")
    elif not bool(torch.isfinite(value).all()):
        raise ConfigError(f"draws.{name} holds NaN or infinite values; it takes N(0, 1) draws.")


def draw_render_randomness(
    render: RenderConfig, batch: int, generator: GeneratorArg, device, given: RenderDraws | None = None
) -> RenderDraws:
    """Fill the draws `given` leaves empty, in a fixed order per generator: jitter, coarse noise,
    importance u, fine noise (noise only when nerf_noise > 0). Deterministic mode draws nothing."""
    given = given or RenderDraws()
    if render.deterministic:
        return given
    shape = (batch, render.num_rays, render.num_steps)
    noisy, hier = render.nerf_noise > 0, render.hierarchical

    def pick(name: str, needed: bool, kind: str, shape: tuple[int, ...]) -> torch.Tensor | None:
        value = getattr(given, name)
        if value is not None or not needed:
            return value
        return draw_batch(kind, shape, generator, device)

    jitter_u = pick("jitter_u", True, "rand", shape)
    coarse_noise = pick("coarse_noise", noisy, "randn", shape)
    importance_u = pick("importance_u", hier, "rand", shape)
    fine_noise = pick("fine_noise", noisy and hier, "randn", (*shape[:2], 2 * shape[2]))
    return replace(
        given, jitter_u=jitter_u, coarse_noise=coarse_noise, importance_u=importance_u, fine_noise=fine_noise
    )


def check_ray_order(order: torch.Tensor | None, rays: int) -> None:
    """A `ConfigError` unless `order` (when given) is a permutation of `rays` ray indices."""
    if order is None:
        return
    if (
        order.dtype.is_floating_point
        or order.dtype.is_complex
        or order.dtype == torch.bool
        or order.shape != (rays,)
    ):
        raise ConfigError(
            f"draws.grad_order must be [{rays}] integer ray indices, got {tuple(order.shape)} {order.dtype}."
        )
    if order.device.type == "cpu" and not torch.equal(order.sort().values, torch.arange(rays)):
        raise ConfigError(f"draws.grad_order must be a permutation of the {rays} rays (each index once).")


def draw_grad_order(render: RenderConfig, generator: GeneratorArg, device, given: RenderDraws) -> RenderDraws:
    """Draw the ray permutation of partial-gradient rendering when it is needed and not given.

    One permutation is shared by the whole batch, as in the official code (from the first generator
    when there is one per image). It changes which rays get gradients, never the rendered values.
    """
    needed = render.grad_rays is not None and render.grad_rays < render.num_rays and torch.is_grad_enabled()
    if not needed or given.grad_order is not None:
        return given
    first = generator if generator is None or isinstance(generator, torch.Generator) else generator[0]
    order = torch.randperm(render.num_rays, generator=first, device=first.device if first else "cpu")
    return replace(given, grad_order=order.to(device))


RayIndex = slice | torch.Tensor
"""Rays to render: a slice, or a 1-D tensor of ray indices."""


def resolve_chunk_rows(
    chunk_rows: int | str | None, device: torch.device | str, free_bytes: int | None = None
) -> int | None:
    """The rows per chunk that `chunk_rows` means on `device`: a number or None as given; for 'auto',
    4,096 off CUDA, and on CUDA the largest power of two up to 65,536 whose estimated working set fits a
    quarter of the free memory, at least 4,096. `free_bytes` defaults to the device's free memory plus
    what PyTorch's allocator holds unused (so that earlier renders do not shrink the chunks)."""
    if chunk_rows != "auto":
        return chunk_rows
    device = torch.device(device)
    if device.type != "cuda":
        return K.DEFAULT_CHUNK_ROWS
    if free_bytes is None:
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        free_bytes = torch.cuda.mem_get_info(device)[0] + cached
    fitting = int(free_bytes * K.GPU_CHUNK_MEMORY_FRACTION // K.CHUNK_BYTES_PER_ROW)
    rows = K.GPU_CHUNK_ROWS
    while rows > K.DEFAULT_CHUNK_ROWS and rows > fitting:
        rows //= 2
    return rows


def ray_chunks(batch: int, rays: RayIndex, chunk_rows: int | None) -> list[RayIndex]:
    """Split `rays` (a slice or an index tensor) into pieces of at most about `chunk_rows` batch x rays."""
    count = rays.stop - rays.start if isinstance(rays, slice) else rays.numel()
    if chunk_rows is None or batch * count <= chunk_rows:
        return [rays]
    per = max(1, chunk_rows // batch)
    if isinstance(rays, slice):
        return [slice(i, min(i + per, rays.stop)) for i in range(rays.start, rays.stop, per)]
    return list(rays.split(per))


def gradient_split(
    num_rays: int, grad_rays: int | None, order: torch.Tensor | None
) -> list[tuple[RayIndex, bool]]:
    """Which rays render with gradients (partial-gradient rendering, spec 2.8).

    Returns [(all rays, True)] when `grad_rays` is None or covers every ray; otherwise the first
    `grad_rays` entries of the permutation `order` with gradients and the rest without.
    """
    if grad_rays is None or grad_rays >= num_rays:
        return [(slice(0, num_rays), True)]
    if order is None or order.numel() != num_rays:
        raise ValueError(f"partial-gradient rendering needs a permutation of the {num_rays} rays.")
    return [(order[:grad_rays], True), (order[grad_rays:], False)]


def _query(field_fn: FieldFn, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """points [B, R, S, 3] -> (features [B, R, S, C], sigma [B, R, S])."""
    b, r, s, _ = points.shape
    features, sigma = field_fn(points.reshape(b, r * s, 3))
    return features.reshape(b, r, s, -1), sigma.reshape(b, r, s)


def _scaled(noise: torch.Tensor | None, std: float) -> torch.Tensor | None:
    return None if noise is None or std == 0 else noise * std


def render_rays(
    field_fn: FieldFn,
    directions: torch.Tensor,
    cam2world: torch.Tensor,
    render: RenderConfig,
    draws: RenderDraws,
    sort_features: bool = False,
) -> Composite:
    """Render B x R rays through `field_fn`.

    Args:
        field_fn: points [B, N, 3] -> (features [B, N, C], sigma [B, N, 1]).
        directions: [1 or B, R, 3] unit ray directions in camera space.
        cam2world: [B, 4, 4] camera-to-world matrices; rays start at the camera origin.
        render: sample counts, bounds, clamp and background options.
        draws: canonical-shape draws for these rays (None fields: no jitter / linspace u / no noise).
        sort_features: move every fine and coarse feature into depth order before compositing, as the
            official code does (the reference path). By default the weights move back to the
            features' order instead: the same sum, in another order (see `composite`).

    Returns:
        The `Composite` over all (coarse, plus fine when hierarchical) samples, sorted by depth.
    """
    b, r = cam2world.shape[0], directions.shape[1]
    t = coarse_depths(render.ray_start, render.ray_end, render.num_steps, directions.device, directions.dtype)
    depths = t.expand(b, r, -1)
    points = directions.unsqueeze(2) * t.view(1, 1, -1, 1)  # [1|B, R, S, 3] in camera space
    offsets = jitter_offsets(t, draws.jitter_u)
    if offsets is not None:  # the point moves by offset * d, as the official perturb_points does
        depths = depths + offsets
        points = points + offsets.unsqueeze(-1) * directions.unsqueeze(2)
    features, sigma = _query(field_fn, transform_points(points.expand(b, -1, -1, -1), cam2world))
    coarse_noise = _scaled(draws.coarse_noise, render.nerf_noise)
    options = dict(clamp_mode=render.clamp_mode, white_back=render.white_back, last_back=render.last_back)
    if not render.hierarchical:
        return composite(features, sigma, depths, coarse_noise, **options)

    with torch.no_grad():
        alphas = alphas_from_sigma(sigma.detach(), sample_deltas(depths), coarse_noise, render.clamp_mode)
        fine_depths = importance_depths(depths, weights_from_alphas(alphas), draws.importance_u)
    world_dirs = rotate_directions(directions, cam2world)  # [B, R, 3]
    origins = cam2world[:, None, None, :3, 3]
    fine_features, fine_sigma = _query(
        field_fn, origins + world_dirs.unsqueeze(2) * fine_depths.unsqueeze(-1)
    )

    # Fine samples go before the coarse ones, then everything is sorted by depth (official order).
    all_depths, order = torch.sort(torch.cat([fine_depths, depths], dim=-1), dim=-1)
    all_sigma = torch.cat([fine_sigma, sigma], dim=-1).gather(-1, order)
    fine_noise = _scaled(draws.fine_noise, render.nerf_noise)
    if not sort_features:
        return composite([fine_features, features], all_sigma, all_depths, fine_noise, order=order, **options)
    all_features = torch.cat([fine_features, features], dim=-2)
    all_features = all_features.gather(-2, order.unsqueeze(-1).expand(-1, -1, -1, all_features.shape[-1]))
    return composite(all_features, all_sigma, all_depths, fine_noise, **options)
