"""Images to files without torchvision: [-1, 1] tensors -> uint8, grids, depth colour maps, PNGs."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, PngImagePlugin

from cips3d.config import is_real_number, whole_count
from cips3d.errors import ConfigError
from cips3d.io.files import atomic_write

# Control points of a perceptually ordered dark-to-bright map (close to matplotlib's 'inferno'),
# interpolated linearly: near is bright, far is dark after `colorize_depth` inverts the depth.
_INFERNO = np.array(
    [
        [0.001, 0.000, 0.014],
        [0.258, 0.039, 0.406],
        [0.578, 0.148, 0.404],
        [0.865, 0.317, 0.226],
        [0.988, 0.645, 0.040],
        [0.988, 0.998, 0.645],
    ]
)


def to_uint8(img: torch.Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """[C, H, W] or [B, C, H, W] in `value_range` -> uint8 [(B,) H, W, C], rounded, clamped."""
    if not isinstance(img, torch.Tensor) or img.ndim < 3:  # a numpy array, or an [H, W] map
        got = list(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
        raise ConfigError(f"to_uint8 takes [..., C, H, W] tensors, got {got}.")
    lo, hi = value_range
    x = (img.detach().float().cpu() - lo) / (hi - lo) * 255
    x = x.round().clamp(0, 255).to(torch.uint8)
    return x.movedim(-3, -1).numpy()


GRID_MAX_TILES = 256  # 16 x 16 images
GRID_MAX_SIDE = 8192  # pixels; a larger PNG is slow to write and to open


def grid_tiles(count: int, height: int, width: int | None = None) -> int:
    """How many of `count` images of height x width px a grid shows: all, unless that would pass
    GRID_MAX_TILES or a side of GRID_MAX_SIDE (at least one)."""
    per_side = max(1, GRID_MAX_SIDE // max(height, width or height))
    return min(count, GRID_MAX_TILES, per_side * per_side)


def is_uint8_array(x: object, ndim: int, channels: tuple[int, ...] | None = None) -> bool:
    """Whether `x` is a non-empty uint8 numpy array of `ndim` axes whose last is one of `channels` (any
    when None): the pixels the image and video writers take."""
    if not (isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == ndim and x.size > 0):
        return False
    return channels is None or x.shape[-1] in channels


def array_kind(x: object) -> str:
    """What error messages say was given instead: 'float32 [3, 6, 7]' for an array, else its type."""
    return f"{x.dtype} {list(x.shape)}" if isinstance(x, np.ndarray) else type(x).__name__


def make_grid(images: np.ndarray, ncols: int | None = None, pad: int = 2, fill: int = 255) -> np.ndarray:
    """uint8 [N, H, W, C] -> one uint8 [rows*H', cols*W', C] image, padded between tiles."""
    if not is_uint8_array(images, 4):  # nothing to tile divided by zero; float tiles passed
        raise ConfigError(f"make_grid takes uint8 [N >= 1, H, W, C] arrays, got {array_kind(images)}.")
    if ncols is not None:  # 0 took the default layout, -1 failed in numpy
        ncols = whole_count(ncols, "ncols")
    whole_count(pad, "pad", minimum=0)
    fills = list(fill) if isinstance(fill, (tuple, list)) else [fill]  # one value, or one per channel
    if not all(is_real_number(f) and 0 <= f <= 255 for f in fills):  # 300 overflowed in numpy
        raise ConfigError(f"fill must be a value from 0 to 255 (or one per channel), got {fill!r}.")
    n, h, w, c = images.shape
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), fill, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y : y + h, x : x + w] = images[i]
    return grid


def colorize_depth(depth: torch.Tensor, near: float, far: float) -> np.ndarray:
    """[1, H, W] or [H, W] depth -> uint8 [H, W, 3]: near bright, far dark, clamped to [near, far]."""
    if not isinstance(depth, torch.Tensor) or depth.ndim < 2 or math.prod(depth.shape[:-2]) != 1:
        got = list(depth.shape) if isinstance(depth, torch.Tensor) else type(depth).__name__
        raise ConfigError(f"colorize_depth takes one map ([H, W], [1, H, W], [1, 1, H, W]; depth_tiles a "
                          f"batch), got {got}.")  # fmt: skip
    if not (is_real_number(near) and is_real_number(far) and near < far):  # else a near-constant map
        raise ConfigError(f"colorize_depth needs near < far, got {near!r} and {far!r}.")
    d = depth.detach().float().cpu().reshape(depth.shape[-2:]).numpy()
    d = np.where(np.isnan(d), far, d)  # shown as far (dark): NaN indexed past the colour map
    t = 1 - np.clip((d - near) / max(far - near, 1e-12), 0, 1)
    pos = t * (len(_INFERNO) - 1)
    i = np.minimum(pos.astype(int), len(_INFERNO) - 2)
    frac = (pos - i)[..., None]
    rgb = _INFERNO[i] * (1 - frac) + _INFERNO[i + 1] * frac
    return (rgb * 255).round().astype(np.uint8)


def depth_tiles(depth: torch.Tensor, near: float, far: float) -> np.ndarray:
    """[B, 1, H, W] depth -> uint8 [B, H, W, 3], each map as `colorize_depth` colours it."""
    return np.stack([colorize_depth(d, near, far) for d in depth])


PNG_RECORD_KEY = "cips3d"
"""The PNG text chunk in which a command records how it made an image (`save_png(record=...)`)."""


def save_png(array: np.ndarray, path: str | os.PathLike, record: Mapping[str, object] | None = None) -> Path:
    """Write uint8 [H, W, C] (C = 1 or 3) as PNG, atomically (a half-written file never appears).

    `record` (JSON-able: which command, model, seed, settings) goes into a text chunk of the file, where
    image viewers keep it out of sight and `read_png_record` (and `cips3d info`) reads it back.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":  # PNG bytes under another name were written before
        raise ConfigError(f"save_png writes PNG files, so the name must end in .png, got {path.name!r}.")
    if not is_uint8_array(array, 3, (1, 3)):  # a [3, H, W] array was saved as a 3-row RGBA picture
        raise ConfigError(f"save_png takes uint8 [H, W, 1 or 3] arrays, got {array_kind(array)}.")
    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    info = None
    if record is not None:
        info = PngImagePlugin.PngInfo()
        info.add_text(PNG_RECORD_KEY, json.dumps(record, sort_keys=True))  # ASCII: a plain tEXt chunk
    atomic_write(path, lambda p: image.save(p, format="PNG", pnginfo=info))
    return path


def read_png_record(file: str | os.PathLike | BinaryIO) -> dict | None:
    """The record `save_png` wrote into the PNG `file` (a path or an open binary file); None for any
    other file (no record, another format, unreadable), so callers can offer it where there is one. Only
    the chunks before the pixels are read, where PIL writes it: a folder of large renders reads fast."""
    try:
        with Image.open(file) as image:
            text = image.info.get(PNG_RECORD_KEY) if image.format == "PNG" else None
        record = json.loads(text) if isinstance(text, str) else None
    except Exception:  # noqa: BLE001 - PIL and json raise many kinds; the answer is the same: none
        return None
    return record if isinstance(record, dict) else None


def save_npy(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a numpy array as .npy, atomically."""
    path = Path(path)

    def write(p: str) -> None:
        with open(p, "wb") as f:
            np.save(f, array)

    atomic_write(path, write)
    return path
