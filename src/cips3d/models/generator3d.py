"""The CIPS-3D generator: latents -> styles -> camera and rays -> NeRF field -> compositing -> INR -> image.

    G = Generator3D(generator_preset("ffhq"))
    out = G(z_nerf, z_inr, camera=Camera.from_angles(yaw, pitch), render=RenderConfig(img_size=128))
    out.img, out.aux_img, out.depth

`mapping`, `truncate` and `synthesis` can be called alone, so styles can be mixed between latents or
per layer. All randomness comes from the `generator` argument or from injected `draws`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

import torch
from torch import nn

from cips3d import constants as K
from cips3d.config import GeneratorConfig, PoseConfig, RenderConfig, check_psi, given_or_default, whole_count
from cips3d.errors import ConfigError
from cips3d.fast import tf32_matmuls
from cips3d.models.inputs import refuse_non_finite, refuse_other_device
from cips3d.models.inr_decoder import InrDecoder, InrModulation, inr_style_names
from cips3d.models.mapping import MappingNetwork
from cips3d.models.nerf_field import NerfField, NerfModulation, nerf_style_names
from cips3d.nn.init import empty_linear, frequency_init_, linear_default_
from cips3d.outputs import GeneratorOutput, Styles
from cips3d.rendering.cameras import Camera, sample_cameras
from cips3d.rendering.compositing import surface_depth
from cips3d.rendering.rays import camera_ray_directions
from cips3d.rendering.volume import (
    RayIndex,
    RenderDraws,
    draw_grad_order,
    draw_render_randomness,
    gradient_split,
    ray_chunks,
    render_rays,
    resolve_chunk_rows,
)
from cips3d.seeding import GeneratorArg, check_generator, check_generators, draw_batch, seeded_generator
from cips3d.words import counted


class Modulation(NamedTuple):
    """Styles folded into per-image weights (`Generator3D.modulate`)."""

    nerf: NerfModulation
    inr: InrModulation


class Generator3D(nn.Module):
    """CIPS-3D generator (spec section 1).

    Args:
        config: network widths and depths (`generator_preset('ffhq')` is the official model).
        generator: source of the initial weights; None means a fresh generator seeded with 0.
            Seeded like `torch.manual_seed(s)`, it gives the official weights for seed s bit for bit.
        initialize: False leaves the weights uninitialised, for a caller that loads them next.
    """

    def __init__(
        self, config: GeneratorConfig, generator: torch.Generator | None = None, initialize: bool = True
    ) -> None:
        super().__init__()
        if not isinstance(config, GeneratorConfig):
            kind = type(config).__name__
            raise ConfigError(
                f"Generator3D takes a GeneratorConfig (e.g. generator_preset('ffhq')), got {kind}."
            )
        self.config = config
        self.field = NerfField(config.nerf)
        self.nerf_mapping = MappingNetwork(config.nerf_mapping)
        self.decoder = InrDecoder(config.inr, input_dim=config.nerf.feature_dim)
        self.inr_mapping = MappingNetwork(config.inr_mapping)
        self.aux_head = empty_linear(config.nerf.feature_dim, 3)
        self.nerf_style_names = nerf_style_names(config.nerf)
        self.inr_style_names = inr_style_names()
        # Truncation centres (spec 1.7): computed once from seeded latents, saved with the weights.
        self.register_buffer("truncation_mean_nerf", torch.zeros(config.nerf_mapping.hidden_dim))
        self.register_buffer("truncation_mean_inr", torch.zeros(config.inr_mapping.hidden_dim))
        if initialize:
            self.reset_parameters(generator if generator is not None else torch.Generator().manual_seed(0))

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None) -> None:
        """Official initialisation, in the official draw order, then the truncation mean."""
        check_generator(generator)
        self.field.reset_parameters(generator)
        self.nerf_mapping.reset_parameters(generator)
        self.decoder.reset_parameters(generator)
        self.inr_mapping.reset_parameters(generator)
        linear_default_(self.aux_head, generator)
        frequency_init_(self.aux_head.weight, K.AUX_FREQUENCY_INIT, generator)
        self.update_truncation_mean()

    @property
    def device(self) -> torch.device:
        return self.aux_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.aux_head.weight.dtype

    # --- latents and styles ----------------------------------------------------------------------
    def sample_latents(self, batch: int, generator: GeneratorArg = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_nerf [B, 256], z_inr [B, 512]) ~ N(0, I) in the model's dtype (drawn in float32, so a seed
        gives the same latents to every model); with a list of B generators, one row each."""
        batch = whole_count(batch, "the number of latents")
        check_generators(generator, batch)
        dims = (self.config.nerf_mapping.z_dim, self.config.inr_mapping.z_dim)
        if generator is None or isinstance(generator, torch.Generator):
            z_nerf, z_inr = (draw_batch("randn", (batch, d), generator, self.device) for d in dims)
        else:  # per element: its z_nerf, then its z_inr, from its own generator
            rows = [[draw_batch("randn", (1, d), g, self.device) for d in dims] for g in generator]
            z_nerf, z_inr = torch.cat([row[0] for row in rows]), torch.cat([row[1] for row in rows])
        return z_nerf.to(self.dtype), z_inr.to(self.dtype)

    def mapping(self, z_nerf: torch.Tensor, z_inr: torch.Tensor) -> Styles:
        """z_nerf [B, 256], z_inr [B, 512] -> styles by layer name, each [B, D].

        The official heads are identities, so every NeRF layer gets w_nerf and every INR layer w_inr;
        the dict lets a caller replace any layer's vector (style mixing).
        """
        self._check_latents(z_nerf, z_inr)
        w_nerf = self.nerf_mapping(z_nerf)
        w_inr = self.inr_mapping(z_inr)
        return {name: w_nerf for name in self.nerf_style_names} | {
            name: w_inr for name in self.inr_style_names
        }

    def _check_latents(self, z_nerf: torch.Tensor, z_inr: torch.Tensor) -> None:
        """A `ConfigError` naming what is wrong with latents of the wrong shape, type or values (the values
        of CPU latents only: nothing is read from a GPU)."""
        dims = (self.config.nerf_mapping.z_dim, self.config.inr_mapping.z_dim)
        for name, z, dim in (("z_nerf", z_nerf, dims[0]), ("z_inr", z_inr, dims[1])):
            if not isinstance(z, torch.Tensor):
                raise ConfigError(f"{name} must be a torch.Tensor, got {type(z).__name__}.")
            if z.ndim != 2 or z.shape[1] != dim or z.shape[0] < 1:
                raise ConfigError(f"{name} must be [B, {dim}] with B >= 1, got {list(z.shape)}.")
            if z.dtype != self.dtype:
                raise ConfigError(f"{name} must be {self.dtype} like the model's weights, got {z.dtype}.")
            refuse_other_device(z, self.device, name)
            refuse_non_finite(z, name)
        if z_nerf.shape[0] != z_inr.shape[0]:
            raise ConfigError(f"z_nerf and z_inr must have one row per image, got {z_nerf.shape[0]} and "
                              f"{z_inr.shape[0]}.")  # fmt: skip

    def truncation_centre(self) -> Styles:
        """The truncation mean by layer name, each [1, D]."""
        nerf, inr = self.truncation_mean_nerf[None], self.truncation_mean_inr[None]
        return {name: nerf for name in self.nerf_style_names} | {name: inr for name in self.inr_style_names}

    def truncate(self, styles: Styles, psi: float, mean: Mapping[str, torch.Tensor] | None = None) -> Styles:
        """mean + psi * (style - mean) for every layer; `mean` defaults to the stored centre.

        psi = 1 returns the styles unchanged; psi must lie in [0, 1].
        """
        check_psi(psi)
        self.check_styles(styles, None, same_dtype=False)
        if mean is not None:  # checked at psi 1 too, where it is not used: a wrong one is a mistake there
            self.check_styles(mean, None, "truncation_mean", same_dtype=False)  # a float32 mean is fine
        if psi == 1.0:
            return dict(styles)
        mean = self.truncation_centre() if mean is None else mean
        # In the styles' dtype and on their device: a float64 mean made float32 styles float64, which
        # synthesis refused; CPU styles (a styles file) are truncated where they are.
        return {name: (m := mean[name].to(s.device, s.dtype)) + psi * (s - m) for name, s in styles.items()}

    @torch.no_grad()
    def update_truncation_mean(
        self, num_samples: int = K.TRUNCATION_SAMPLES, seed: int = K.TRUNCATION_SEED, batch: int = 2000
    ) -> None:
        """Average the mapping outputs of `num_samples` latents drawn from `seed` into the buffers.

        Call it after changing the mapping weights yourself: loading official weights, blending and
        training snapshots do, but `save_generator` writes the mean as it stands.
        """
        num_samples, batch = whole_count(num_samples, "num_samples"), whole_count(batch, "batch")
        generator = seeded_generator(seed)
        total_nerf = torch.zeros_like(self.truncation_mean_nerf, dtype=torch.float64)
        total_inr = torch.zeros_like(self.truncation_mean_inr, dtype=torch.float64)
        for start in range(0, num_samples, batch):
            z_nerf, z_inr = self.sample_latents(min(batch, num_samples - start), generator)
            total_nerf += self.nerf_mapping(z_nerf).double().sum(0)
            total_inr += self.inr_mapping(z_inr).double().sum(0)
        self.truncation_mean_nerf.copy_(total_nerf / num_samples)
        self.truncation_mean_inr.copy_(total_inr / num_samples)

    # --- rendering -------------------------------------------------------------------------------
    def forward(
        self,
        z_nerf: torch.Tensor,
        z_inr: torch.Tensor,
        *,
        camera: Camera | None = None,
        pose: PoseConfig | None = None,
        render: RenderConfig | None = None,
        psi: float = 1.0,
        truncation_mean: Mapping[str, torch.Tensor] | None = None,
        generator: GeneratorArg = None,
        draws: RenderDraws | None = None,
        nerf_grad: bool = True,
        on_rays: Callable[[int], None] | None = None,
    ) -> GeneratorOutput:
        """Latents -> images. Without `camera`, cameras are drawn from `pose` (default: the FFHQ prior).

        Args:
            z_nerf: [B, 256] NeRF latents; z_inr: [B, 512] INR latents.
            camera: explicit cameras for the B images.
            pose: the camera distribution when `camera` is None (an official call's, replayed with an
                explicit camera, is ignored as the official code ignores it).
            render: image size and sampling options (default `RenderConfig()`).
            psi: truncation in [0, 1] (1: none).
            truncation_mean: styles to truncate towards instead of the stored centre.
            generator: one `torch.Generator`, or one per image (then each image depends only on its own).
            draws: injected random numbers; the fields it leaves None are drawn from `generator`.
            nerf_grad: False renders the NeRF side without gradients (frozen-NeRF training).
            on_rays: progress, as in `synthesis`.
        """
        styles = self.mapping(z_nerf, z_inr)
        check_generators(generator, z_nerf.shape[0])  # before cameras are drawn with them
        styles = self.truncate(styles, psi, truncation_mean)
        pose, draws = (
            given_or_default(pose, PoseConfig, "pose"),
            given_or_default(draws, RenderDraws, "draws"),
        )
        if camera is not None and (draws.yaw_draw is not None or draws.pitch_draw is not None):
            raise ConfigError("an explicit camera is used as it is: inject pose draws only without one.")
        if camera is None:
            camera = self.sample_cameras(pose, z_nerf.shape[0], generator, draws)
        return self.synthesis(
            styles, camera, render, generator=generator, draws=draws, nerf_grad=nerf_grad, on_rays=on_rays
        )

    def sample_cameras(
        self, pose: PoseConfig, batch: int, generator: GeneratorArg = None, draws: RenderDraws | None = None
    ) -> Camera:
        """B cameras from `pose`, drawn as `forward` draws them (with a list of generators, camera i
        from generator i, right after that image's latents)."""
        draws = given_or_default(draws, RenderDraws, "draws")
        kwargs = dict(yaw_draw=draws.yaw_draw, pitch_draw=draws.pitch_draw, device=self.device)
        if generator is None or isinstance(generator, torch.Generator):
            return sample_cameras(pose, batch, generator, **kwargs)
        check_generators(generator, whole_count(batch, "the number of cameras"))
        if draws.yaw_draw is not None or draws.pitch_draw is not None:
            raise ConfigError("inject pose draws with a single generator, not a list.")
        return Camera.cat([sample_cameras(pose, 1, g, device=self.device) for g in generator])

    def modulate(
        self, styles: Mapping[str, torch.Tensor], render: RenderConfig | None = None, nerf_grad: bool = True
    ) -> Modulation:
        """Fold styles into per-image weights of the field and the INR, once per render (not per chunk
        of rays); `synthesis` takes the result, so frames of the same latents can share it."""
        self.check_styles(styles, None)
        with torch.set_grad_enabled(torch.is_grad_enabled() and nerf_grad):
            nerf = self.field.modulate(styles)  # picks its own layers' styles by name
        return Modulation(
            nerf, self.decoder.modulate(styles, given_or_default(render, RenderConfig, "render").precision)
        )

    def synthesis(
        self,
        styles: Mapping[str, torch.Tensor],
        camera: Camera,
        render: RenderConfig | None = None,
        *,
        generator: GeneratorArg = None,
        draws: RenderDraws | None = None,
        nerf_grad: bool = True,
        modulation: Modulation | None = None,
        on_rays: Callable[[int], None] | None = None,
    ) -> GeneratorOutput:
        """Styles + cameras -> images, rendered in chunks of rays (bounded memory at any size).

        With `render.grad_rays` set and autograd on, only that many rays per image carry gradients.
        `nerf_grad=False` renders the NeRF side (field, compositing, aux head) without gradients, for
        training with a frozen NeRF; the INR decoder still gets them. `modulation` is `modulate(styles,
        render)` computed earlier (reused across frames of the same latents); None computes it here.
        `on_rays(n)` is called after each chunk with the rays it rendered (of all images together), for
        progress bars: a batch at 256 px takes minutes on a CPU.
        """
        render = given_or_default(render, RenderConfig, "render")
        draws = given_or_default(draws, RenderDraws, "draws")
        if not isinstance(camera, Camera):
            raise ConfigError(f"camera must be a Camera, got {type(camera).__name__}.")
        b, r, s = camera.batch, render.num_rays, render.num_steps
        if b < 1:  # failed reshaping a tensor of 0 elements
            raise ConfigError("the camera batch is empty: synthesis renders one image per camera.")
        if render.precision == "bf16" and self.dtype == torch.float64:  # failed deep in a product
            raise ConfigError("precision 'bf16' rounds a float32 model's INR; this model is float64 "
                              "(render it in 'float32' precision, or G.float() first).")  # fmt: skip
        self._check_batch(styles, b, generator)
        draws = draws.normalized(b, r, s)
        draws = draw_render_randomness(render, b, generator, self.device, draws).to(self.device, self.dtype)
        draws = draw_grad_order(render, generator, self.device, draws)
        camera = camera.to(self.device, self.dtype)
        cam2world = camera.cam2world()
        directions = camera_ray_directions(render.img_size, render.fov, self.device, self.dtype).unsqueeze(0)
        grad_enabled = torch.is_grad_enabled()
        if modulation is not None:
            check_modulation(modulation, b, torch.bfloat16 if render.precision == "bf16" else self.dtype)
        nerf, inr = modulation or self.modulate(styles, render, nerf_grad=nerf_grad)
        pieces = []
        for rays, with_grad in gradient_split(
            r, render.grad_rays if grad_enabled else None, draws.grad_order
        ):
            with torch.set_grad_enabled(grad_enabled and with_grad):
                outputs = self._render_rays(
                    nerf, inr, directions, cam2world, render, draws, rays, nerf_grad, on_rays
                )
            pieces.append((rays, outputs))
        rgb, aux, feature, depth, opacity = _assemble(pieces, r)
        return GeneratorOutput(
            img=_to_image(rgb, render.img_size),
            aux_img=_to_image(aux, render.img_size),
            nerf_feature=feature,
            depth=_to_image(depth.unsqueeze(-1), render.img_size),
            opacity=_to_image(opacity.unsqueeze(-1), render.img_size),
            cam2world=cam2world,
            camera_origin=cam2world[:, :3, 3],
            pitch_yaw=camera.pitch_yaw(),
            styles=dict(styles),
        )

    def _render_rays(
        self,
        nerf: NerfModulation,
        inr: InrModulation,
        directions: torch.Tensor,
        cam2world: torch.Tensor,
        render: RenderConfig,
        draws: RenderDraws,
        rays: RayIndex,
        nerf_grad: bool,
        on_rays: Callable[[int], None] | None = None,
    ) -> list[torch.Tensor]:
        """Render the rays `rays` of every image, chunk by chunk: [rgb, aux, feature, depth, opacity]."""

        def field_fn(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            tf32 = render.field_precision == "tf32"
            if render.field_kernel == "triton" and not torch.is_grad_enabled():
                return self.field.fused(points, nerf, tf32)
            with tf32_matmuls(tf32, points.device):
                return self.field(points, nerf)

        parts = []
        chunk_rows = resolve_chunk_rows(render.chunk_rows, cam2world.device)
        for index in ray_chunks(cam2world.shape[0], rays, chunk_rows):
            with torch.set_grad_enabled(torch.is_grad_enabled() and nerf_grad):
                comp = render_rays(field_fn, directions[:, index], cam2world, render, draws.rays(index))
                aux = torch.tanh(self.aux_head(comp.feature))
                depth = surface_depth(comp, render.ray_end)
            with tf32_matmuls(render.precision == "tf32", comp.feature.device):
                rgb = self.decoder(comp.feature, inr, render.precision, render.inr_kernel)
            parts.append((rgb, aux, comp.feature, depth, comp.opacity))
            if on_rays is not None:
                on_rays(comp.feature.shape[0] * comp.feature.shape[1])
        return [torch.cat(p, dim=1) for p in zip(*parts, strict=True)]

    def check_styles(
        self,
        styles: Mapping[str, torch.Tensor],
        batch: int | None,
        what: str = "styles",
        same_dtype: bool = True,
    ) -> None:
        """A `ConfigError` (a ValueError) unless `styles` has every layer of this generator as a [B, D]
        tensor of the model's dtype on its device, all with batch `batch` (any one batch when None).
        `same_dtype=False` takes any dtype and device: for callers that convert the styles themselves."""
        if not isinstance(styles, Mapping):
            raise ConfigError(
                f"{what} must be a dict of [B, D] tensors by layer name, got {type(styles).__name__}."
            )
        names = (*self.nerf_style_names, *self.inr_style_names)
        missing = [n for n in names if n not in styles]
        if missing:
            raise ConfigError(f"the layers {missing} are missing from {what}.")
        unknown = [n for n in styles if n not in names]  # a misspelt layer was silently left out
        if unknown:
            raise ConfigError(f"{what} name layers this model does not have: {unknown}.")
        if not all(isinstance(v, torch.Tensor) for v in styles.values()):
            raise ConfigError(f"{what} must be torch tensors by layer name.")
        flat = next((n for n, v in styles.items() if v.ndim < 2), None)  # was "batch sizes [64]"
        if flat is not None:
            raise ConfigError(
                f"the {what} of {flat} are {list(styles[flat].shape)}: [B, D] tensors were expected."
            )
        sizes = {v.shape[0] for v in styles.values()}
        if len(sizes) != 1 or (batch is not None and sizes != {batch}):
            images = "" if batch is None else f" for {counted(batch, 'camera')}"
            raise ConfigError(f"{what} have batch sizes {sorted(sizes)}{images}.")
        for name, centre in self.truncation_centre().items():  # [1, D] per layer: the widths expected
            if styles[name].shape[1:] != centre.shape[1:]:
                raise ConfigError(
                    f"the {what} of {name} are {list(styles[name].shape)} where this model's are "
                    f"[B, {centre.shape[-1]}]: they belong to a model of another architecture."
                )
            if same_dtype and styles[name].dtype != self.dtype:
                raise ConfigError(
                    f"{what} must be {self.dtype} like the model's weights, got {styles[name].dtype}."
                )
            if same_dtype:
                refuse_other_device(styles[name], self.device, f"layer {name} of the {what}")
            refuse_non_finite(styles[name], f"layer {name} of the {what}")  # they rendered black images

    def _check_batch(self, styles: Mapping[str, torch.Tensor], batch: int, generator: GeneratorArg) -> None:
        check_generators(generator, batch)
        self.check_styles(styles, batch)


def check_modulation(modulation: Modulation, batch: int, dtype: torch.dtype) -> None:
    """A `ConfigError` unless `modulation` was folded for `batch` images in `dtype` (the render's INR
    precision); that it was folded from the very styles given is the caller's promise (checking it
    would cost a fold)."""
    first = modulation.inr.weights[0][0]  # [B, in, out]
    if first.shape[0] != batch:
        raise ConfigError(
            f"the modulation was folded for {counted(first.shape[0], 'image')}, not the {batch} asked for."
        )
    if first.dtype != dtype:
        raise ConfigError(
            f"the modulation was folded in {first.dtype}, but this render needs {dtype}: fold it with "
            "modulate(styles, render) for the same render precision."
        )


def _assemble(pieces: list[tuple[RayIndex, list[torch.Tensor]]], num_rays: int) -> list[torch.Tensor]:
    """Put per-ray outputs of ray subsets back in ray order (differentiably)."""
    if len(pieces) == 1 and isinstance(pieces[0][0], slice):
        return pieces[0][1]
    out = []
    for k in range(len(pieces[0][1])):
        first = pieces[0][1][k]
        full = first.new_zeros(first.shape[0], num_rays, *first.shape[2:])
        for rays, values in pieces:
            full = full.index_copy(1, rays, values[k])
        out.append(full)
    return out


def _to_image(values: torch.Tensor, size: int) -> torch.Tensor:
    """[B, H*W, C] row-major pixels -> [B, C, H, W]."""
    return values.reshape(values.shape[0], size, size, values.shape[-1]).permute(0, 3, 1, 2)
