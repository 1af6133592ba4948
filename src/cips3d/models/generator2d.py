"""The 2D CIPS generator (`CIPSskip`, spec 8.1): an image is the colour of each pixel, computed from that
pixel's coordinates and one latent, independently of every other pixel.

    z -> mapping -> w
    (x, y) -> [sin(Fourier features), learned coordinate embedding] -> styled FC -> 7 pairs of styled
    FCs, a to-RGB head after each pair, the RGB outputs summed (CIPSres, `architecture="res"`: each pair
    a residual block, one to-RGB head at the end)

Because pixels are independent, a patch of the coordinate grid renders exactly that patch of the image,
a denser grid renders more pixels of the same image, and any scattered set of points (foveated
sampling) renders just those points. It shares `modulate_weight` with CIPS-3D's INR decoder.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from cips3d import constants as K
from cips3d.config import check_psi, is_real_number, whole_count
from cips3d.config_2d import FOURIER_INIT, MAPPING_LR_MUL, Cips2DConfig
from cips3d.errors import ConfigError
from cips3d.models.coordinates import cylinder_grid, plane_grid
from cips3d.models.inputs import refuse_non_finite, refuse_other_device, require_tensor
from cips3d.models.mapping import pixel_norm
from cips3d.nn.equalized import EqualLinear
from cips3d.nn.styled import StyledFC, ToRGB, WidthSkip
from cips3d.seeding import GeneratorArg, check_generator, draw, draw_batch, seeded_generator

NoiseMode = Literal["random", "none"]
CHUNK_PIXELS = 65_536
"""Pixels rendered at once: a 256 x 256 frame in one piece; about 0.4 GB of activations at the official
widths (the first layer reads 1,024 channels), whatever the resolution asked for."""

MAX_COORDINATE = 1e6
"""The farthest a frame reaches or a window moves, in frame units (the training frame spans -1 to 1): far
past any view, and well inside float32 (a reach of 1e300 overflowed deep inside a grid)."""
MAX_ZOOM = 1024.0
"""The viewer's and `sample2d --zoom`'s limit: past it the window is narrower than the float32 spacing of
its coordinates can resolve well."""


def check_window(
    x: float, y: float, zoom: float, centre: str = "the window's centre", zoom_name: str = "the window's zoom"
) -> None:
    """A `ConfigError` unless the centre (x, y) and `zoom` frame a window `window_grid` renders: the one
    rule of the viewer's query, `sample2d --center --zoom` and the API, each naming the values in its own
    words (`centre`, `zoom_name`)."""
    if not all(is_real_number(v) for v in (x, y, zoom)):
        raise ConfigError(f"{centre} and {zoom_name} must be numbers, got {x!r}, {y!r} and {zoom!r}.")
    if not (abs(x) <= MAX_COORDINATE and abs(y) <= MAX_COORDINATE):  # NaN fails this too
        raise ConfigError(
            f"{centre} must be finite and at most {MAX_COORDINATE:g} either way, got {x:g},{y:g}."
        )
    if not 1 / MAX_ZOOM <= zoom <= MAX_ZOOM:
        raise ConfigError(f"{zoom_name} must be in [1/{MAX_ZOOM:g}, {MAX_ZOOM:g}], got {zoom:g}.")


def float32_spacing(value: float) -> float:
    """The gap between float32 numbers next to `value` (its unit in the last place)."""
    return 2.0 ** (math.frexp(abs(value))[1] - 24) if value else 2.0**-149


PIXEL_IN_SPACINGS = 4
"""Ours: a window's pixels must lie at least this many float32 gaps apart (then a pixel's coordinate is
off by at most an eighth of a pixel); closer, neighbouring pixels share coordinates and the image
breaks into blocks."""


def check_window_resolution(height: int, x: float, y: float, zoom: float) -> None:
    """A `ConfigError` when the window's pixels at `height` rows are finer than float32 coordinates
    resolve this far from the origin (a window at x = 1000 zoomed 1024 times would render blocks)."""
    pixel = 2 / (zoom * height)  # the frame spans [-1, 1] over `height` rows; the window 1/zoom of it
    reach = max(abs(x), abs(y)) + 1 / zoom
    gap = float32_spacing(reach)
    if pixel < PIXEL_IN_SPACINGS * gap:
        most = 2 / (height * PIXEL_IN_SPACINGS * gap)
        raise ConfigError(
            f"at zoom {zoom:g} the {height}-row window's pixels are finer than float32 coordinates resolve "
            f"{reach:g} from the origin; zoom {most:.4g} at most there, or look nearer the origin."
        )


class Mapping2D(nn.Module):
    """z [B, D] -> w [B, D]: PixelNorm, then equalised-LR linear layers (lr_mul 0.01) with LeakyReLU."""

    def __init__(self, dim: int, layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            EqualLinear(dim, dim, activate=True, lr_mul=MAPPING_LR_MUL) for _ in range(layers)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = pixel_norm(z)
        for layer in self.layers:
            x = layer(x)
        return x


class CoordinateEncoding(nn.Module):
    """coords [B, H, W, 2] -> [B, H * W, fourier_dim + embedding_dim]: sin(Fourier features) and the
    learned embedding, taken as is on the training grid and sampled bilinearly elsewhere (border
    padding; `embedding_align_corners`: ours puts the stored vectors at the training grid's points).

    With `coordinates='cylinder'` the Fourier features read (cos pi x, sin pi x, y) and the embedding
    is sampled around the cylinder: x is wrapped into [-1, 1) and the table gets its first column
    again after its last, so the column between x = 1 - 2/W and x = 1 (= -1) blends the two ends
    (W: the table's columns, `grid_width`)."""

    def __init__(self, config: Cips2DConfig) -> None:
        super().__init__()
        self.cylinder = config.panorama
        self.align_corners = config.embedding_align_corners
        self.fourier_weight = nn.Parameter(torch.empty(config.fourier_dim, 3 if self.cylinder else 2))
        self.fourier_bias = nn.Parameter(torch.empty(config.fourier_dim))
        self.embedding = nn.Parameter(torch.empty(config.embedding_dim, config.size, config.grid_width))

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None) -> None:
        self.fourier_weight.uniform_(-FOURIER_INIT, FOURIER_INIT, generator=generator)
        fan_in = self.fourier_weight.shape[1]  # a 1x1 conv's default bias
        self.fourier_bias.uniform_(-(fan_in**-0.5), fan_in**-0.5, generator=generator)
        self.embedding.normal_(generator=generator)

    def forward(self, coords: torch.Tensor, table_rows: slice | None = None) -> torch.Tensor:
        """`table_rows`: the coordinates are those entries of the training grid (in row-major order), so
        the stored vectors are taken as they are instead of sampled."""
        b, h, w, _ = coords.shape
        fourier = torch.sin(F.linear(self._fourier_input(coords), self.fourier_weight, self.fourier_bias))
        if table_rows is not None:
            entries = self.embedding.flatten(1).t()[table_rows]  # [h * w, embedding_dim]
            embedded = entries.reshape(h, w, -1).expand(b, h, w, -1)
        else:
            embedded = self._sample_embedding(coords)
        return torch.cat([fourier, embedded], dim=-1).reshape(b, h * w, -1)

    def _fourier_input(self, coords: torch.Tensor) -> torch.Tensor:
        if not self.cylinder:
            return coords
        angle = coords[..., :1] * math.pi
        return torch.cat([torch.cos(angle), torch.sin(angle), coords[..., 1:]], dim=-1)

    def _sample_embedding(self, coords: torch.Tensor) -> torch.Tensor:
        """The embedding bilinearly at `coords` -> [B, H, W, embedding_dim]."""
        table = self.embedding
        if self.cylinder:  # columns at x = -1 + 2k/W for k < W, then column 0 again at x = 1
            table = torch.cat([table, table[..., :1]], dim=-1)
            x = torch.remainder(coords[..., :1] + 1, 2) - 1  # wrapped into [-1, 1)
            coords = torch.cat([x, coords[..., 1:]], dim=-1)
        table = table[None].expand(coords.shape[0], -1, -1, -1)
        sampled = F.grid_sample(
            table, coords, mode="bilinear", padding_mode="border", align_corners=self.align_corners
        )
        return sampled.permute(0, 2, 3, 1)


class Generator2D(nn.Module):
    """The 2D CIPS generator of `config`, initialised from `generator` (see the module docstring); None
    means a fresh generator seeded with 0, as for `Generator3D` (not PyTorch's global one)."""

    def __init__(self, config: Cips2DConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(config, Cips2DConfig):
            raise ConfigError(
                "Generator2D takes a Cips2DConfig (e.g. cips2d_preset('cips-256')), got "
                f"{type(config).__name__}."
            )
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.config = config
        d = config.style_dim
        self.mapping = Mapping2D(d, config.mapping_layers)
        self.encoding = CoordinateEncoding(config)
        self.first = StyledFC(config.fourier_dim + config.embedding_dim, config.first_width, d)
        pairs, widths_in = [], [config.first_width, *config.widths[:-1]]
        for w_in, w_out in zip(widths_in, config.widths, strict=True):
            pairs.append(nn.ModuleList([StyledFC(w_in, w_out, d), StyledFC(w_out, w_out, d)]))
        self.pairs = nn.ModuleList(pairs)
        if self.residual:  # CIPSres: residual pairs, a 1x1 skip where the width changes, one head
            self.skips = nn.ModuleList(
                WidthSkip(w_in, w_out) if w_in != w_out else nn.Identity()
                for w_in, w_out in zip(widths_in, config.widths, strict=True)
            )
            self.to_rgb = nn.ModuleList([ToRGB(config.widths[-1], d)])
        else:
            self.to_rgb = nn.ModuleList(ToRGB(w, d) for w in config.widths)
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        check_generator(generator)
        for layer in self.mapping.layers:
            layer.reset_parameters(generator)
        self.encoding.reset_parameters(generator)
        self.first.reset_parameters(generator)
        if self.residual:
            for pair, skip in zip(self.pairs, self.skips, strict=True):
                for layer in (*pair, skip):
                    if isinstance(layer, WidthSkip | StyledFC):
                        layer.reset_parameters(generator)
            self.to_rgb[0].reset_parameters(generator)
            return
        for pair, rgb in zip(self.pairs, self.to_rgb, strict=True):
            for layer in pair:
                layer.reset_parameters(generator)
            rgb.reset_parameters(generator)

    @property
    def residual(self) -> bool:
        """CIPSres: residual pairs and one to-RGB head (`Cips2DConfig.architecture`)."""
        return self.config.architecture == "res"

    @property
    def device(self) -> torch.device:
        return self.encoding.embedding.device

    @property
    def dtype(self) -> torch.dtype:
        return self.encoding.embedding.dtype

    def training_grid(self, batch: int = 1) -> torch.Tensor:
        """[B, size, grid_width, 2]: the coordinates of the learned embedding's entries (`plane_grid` or,
        for `coordinates='cylinder'`, `cylinder_grid`), on this model's device."""
        grid = cylinder_grid if self.config.panorama else plane_grid
        return grid(self.config.size, self.config.grid_width, batch).to(self.device, self.dtype)

    def frame_width(self, height: int, turns: float = 1.0) -> int:
        """Columns of the training frame (a cylinder model: `turns` times round) at `height` rows."""
        return max(1, round(height * self.config.grid_width / self.config.size * turns))

    def frame_grid(self, height: int, extent: float = 1.0, turns: float = 1.0) -> torch.Tensor:
        """[1, height, width, 2]: the training frame at `height` rows (denser or sparser), as wide as the
        training images' aspect; `extent` > 1 reaches beyond the frame (vertically only, for cylinder
        coordinates), and a cylinder model's frame goes `turns` times round. On this model's device."""
        whole_count(height, "height")
        reaches = is_real_number(extent) and is_real_number(turns)
        if not (reaches and 0 < extent <= MAX_COORDINATE and 0 < turns <= MAX_COORDINATE):
            raise ConfigError(
                f"the frame's extent and turns must be positive and at most {MAX_COORDINATE:g}, got "
                f"{extent}, {turns}."
            )
        width = self.frame_width(height, turns)
        if self.config.panorama:
            grid = cylinder_grid(height, width, 1, turns, extent=extent)
        elif turns != 1:
            raise ConfigError(
                "turns are for panorama models (cylinder coordinates); this model's images are flat."
            )
        else:
            grid = plane_grid(height, width, 1, extent)
        return grid.to(self.device, self.dtype)

    def window_grid(self, height: int, x: float = 0.0, y: float = 0.0, zoom: float = 1.0) -> torch.Tensor:
        """[1, height, width, 2]: the window of the viewer (`cips3d view`) and of `sample2d --center
        --zoom`: the training frame at `height` rows (`frame_grid(height)`, as wide), scaled by 1/zoom
        about its centre and moved to (x, y). A cylinder model's x is its angle coordinate (2 per turn):
        zooming in spans less of the turn in as many columns. On this model's device."""
        check_window(x, y, zoom)
        if self.config.panorama:  # x goes round (2 per turn): as near the origin, however far
            x = (x + 1) % 2 - 1
        check_window_resolution(whole_count(height, "height"), x, y, zoom)
        width, half = self.frame_width(height), 1 / zoom
        if self.config.panorama:  # the window starts half its span left of x
            grid = cylinder_grid(height, width, 1, turns=half, start=x - half, extent=half)
            grid = grid + torch.tensor([0.0, y])
        else:
            grid = plane_grid(height, width, 1, half) + torch.tensor([x, y])
        return grid.to(self.device, self.dtype)

    def sample_latents(self, batch: int, generator: GeneratorArg = None) -> torch.Tensor:
        """z [B, style_dim] ~ N(0, I) in float32 from `generator` (one for the batch, or one per latent
        as `generators_for_seeds` makes them, as for the 3D model), in the model's dtype."""
        shape = (whole_count(batch, "the number of latents"), self.config.style_dim)
        return draw_batch("randn", shape, generator, "cpu").to(self.device, self.dtype)

    @torch.no_grad()
    def mean_style(
        self, num_samples: int = K.TRUNCATION_SAMPLES, seed: int = K.TRUNCATION_SEED, batch: int = 2000
    ) -> torch.Tensor:
        """[1, D]: the average of the mapping's outputs for `num_samples` latents drawn from `seed` (the
        centre that truncation pulls towards; computed on demand, not stored with the weights)."""
        num_samples, batch = whole_count(num_samples, "num_samples"), whole_count(batch, "batch")
        generator = seeded_generator(seed)
        total = torch.zeros(self.config.style_dim, dtype=torch.float64, device=self.device)
        for start in range(0, num_samples, batch):
            total += (
                self.mapping(self.sample_latents(min(batch, num_samples - start), generator)).double().sum(0)
            )
        return (total / num_samples).to(self.dtype)[None]

    @staticmethod
    def truncate(w: torch.Tensor, psi: float, mean: torch.Tensor | None) -> torch.Tensor:
        """w pulled towards `mean` (`mean_style`): mean + psi (w - mean). psi 1 leaves it, 0 gives the mean.
        (The official CIPS code blends z before the mapping instead.)"""
        check_psi(psi)
        if mean is None and psi == 1:  # callers at psi 1 need no mean
            return w
        if not (isinstance(mean, torch.Tensor) and mean.ndim in (1, 2) and mean.shape[-1] == w.shape[-1]):
            got = list(mean.shape) if isinstance(mean, torch.Tensor) else type(mean).__name__
            raise ConfigError(f"the truncation mean must be [1, {w.shape[-1]}] (mean_style()), got {got}.")
        return mean.to(w.dtype) + psi * (w - mean.to(w.dtype)) if psi != 1 else w

    def synthesis(
        self,
        w: torch.Tensor,
        coords: torch.Tensor | None = None,
        noise: NoiseMode = "none",
        generator: torch.Generator | None = None,
        chunk_pixels: int = CHUNK_PIXELS,
        on_pixels: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        """w [B, D] (, coords [B or 1, H, W, 2]) -> images [B, 3, H, W] (no final tanh, as official).

        w may also be [B, num_styles, D]: one style per modulated layer (W+, as inversion fits them),
        in the order first layer, then each pair's two layers and its to-RGB head (residual: the one
        head last).
        Without `coords`, the training grid (size x grid_width) with its embeddings as stored (a model
        converted from the official code, outside training: sampled there, as the official code
        does). `noise` 'random' adds fresh per-pixel noise at every styled FC, drawn from `generator`
        (its weights start at zero, so an untrained model ignores it); 'none' renders deterministically.
        Pixels are computed `chunk_pixels` at a time (they are independent), so memory stays bounded
        at any resolution; the image does not depend on it. `on_pixels` is told how many pixels (of each
        image) every chunk computed: progress for large renders.
        """
        if noise not in ("random", "none"):
            raise ConfigError(f"noise must be 'random' or 'none', got {noise!r}.")
        chunk_pixels = whole_count(chunk_pixels, "chunk_pixels")
        self._check_input(w, "w", (2, 3))
        refuse_non_finite(w, "w")
        b = w.shape[0]
        styles = self._per_layer(w)
        # The official code samples the table (half an entry off) on the training grid too, except in
        # training; with our alignment the table is what sampling there would give.
        on_grid = coords is None and (self.training or self.config.embedding_align_corners)
        if coords is None:
            coords = self.training_grid(b)
        require_tensor(coords, "coords")
        if coords.dim() == 4 and coords.shape[0] == 1:  # one grid for every image
            coords = coords.expand(b, *coords.shape[1:])
        if coords.dim() != 4 or coords.shape[0] != b or coords.shape[-1] != 2 or 0 in coords.shape[1:3]:
            batch = "1" if b == 1 else f"{b} or 1"  # "B=1 or 1"; a grid of no pixel failed in torch.cat
            raise ConfigError(f"coords must be [{batch}, H >= 1, W >= 1, 2], got {list(coords.shape)}.")
        refuse_non_finite(coords, "coords")
        h, width = coords.shape[1:3]
        pixels = coords.to(self.dtype).reshape(b, h * width, 1, 2)
        noises = None  # drawn whole, layer by layer, so that chunking does not change the draws
        if noise == "random":
            layers = 1 + 2 * len(self.pairs)
            noises = [
                draw("randn", (b, h * width, 1), generator, self.device).to(self.dtype)  # on its device
                for _ in range(layers)
            ]
        parts = []
        for start in range(0, h * width, chunk_pixels):
            rows = slice(start, min(start + chunk_pixels, h * width))
            x = self.encoding(pixels[:, rows], table_rows=rows if on_grid else None)
            parts.append(self._decode(x, styles, None if noises is None else [n[:, rows] for n in noises]))
            if on_pixels is not None:
                on_pixels(rows.stop - rows.start)
        rgb = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return rgb.transpose(1, 2).reshape(b, 3, h, width)

    def _decode(
        self, x: torch.Tensor, styles: list[torch.Tensor], noises: list[torch.Tensor] | None
    ) -> torch.Tensor:
        """Encoded pixels [B, N, F + E] -> RGB [B, N, 3] through the styled FCs (noise per styled FC)."""
        styles_left, noises_left = iter(styles), iter(noises or [])
        x = self.first(x, next(styles_left), next(noises_left, None))
        if self.residual:
            for (a, c), skip in zip(self.pairs, self.skips, strict=True):
                y = a(x, next(styles_left), next(noises_left, None))
                x = (c(y, next(styles_left), next(noises_left, None)) + skip(x)) / math.sqrt(2)
            return self.to_rgb[0](x, next(styles_left))
        rgb = 0
        for (a, c), to_rgb in zip(self.pairs, self.to_rgb, strict=True):
            x = a(x, next(styles_left), next(noises_left, None))
            x = c(x, next(styles_left), next(noises_left, None))
            rgb = rgb + to_rgb(x, next(styles_left))
        return rgb

    @property
    def num_styles(self) -> int:
        """Modulated layers: the first, then two styled FCs per pair and the to-RGB heads (one per pair,
        or one in all for the residual architecture)."""
        return 1 + 2 * len(self.pairs) + len(self.to_rgb)

    def _check_input(self, x: object, name: str, dims: tuple[int, ...]) -> None:
        """A `ConfigError` naming what is wrong with a latent or style `x` (shape and type only)."""
        d = self.config.style_dim
        shapes = " or ".join(["[B, D]", f"[B, {self.num_styles}, D]"][: len(dims)])
        if not isinstance(x, torch.Tensor):
            raise ConfigError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
        if x.ndim not in dims or x.shape[0] < 1 or x.shape[-1] != d:
            raise ConfigError(f"{name} must be {shapes} with B >= 1 and D = {d}, got {list(x.shape)}.")
        if x.dtype != self.dtype:
            raise ConfigError(f"{name} must be {self.dtype} like the model's weights, got {x.dtype}.")
        refuse_other_device(x, self.device, name)

    def _per_layer(self, w: torch.Tensor) -> list[torch.Tensor]:
        """w [B, D] (shared by every layer) or [B, num_styles, D] -> one [B, D] per layer."""
        if w.dim() == 2:
            return [w] * self.num_styles
        if w.dim() != 3 or w.shape[1] != self.num_styles:
            raise ConfigError(f"w must be [B, D] or [B, {self.num_styles}, D], got {list(w.shape)}.")
        return list(w.unbind(1))

    def forward(
        self, z: torch.Tensor, coords: torch.Tensor | None = None, noise: NoiseMode = "none",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """z [B, D] -> images [B, 3, H, W] (see `synthesis`)."""
        self._check_input(z, "z", (2,))
        refuse_non_finite(z, "z")
        return self.synthesis(self.mapping(z), coords, noise, generator)
