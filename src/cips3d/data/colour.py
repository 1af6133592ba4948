"""Images' embedded colour profiles (ICC) converted to sRGB, the space the networks' images are in.

A photo saved in Display P3 (phones) or Adobe RGB (cameras) stores other numbers for the same colour
than sRGB: read as sRGB they look washed out, so a model trained or fitted on them learns the wrong
colours. Viewers convert with the profile; so does `in_srgb` (RGB images), with PIL's LittleCMS.
"""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image

try:
    from PIL import ImageCms
except ImportError:  # a Pillow built without LittleCMS: images are read as stored, as before
    ImageCms = None

# The modes whose profiles are applied (alpha kept: screenshots are RGBA PNGs in Display P3), and the
# colour space their profile must be for. (CMYK photos would gain from their profiles too; no CMYK
# profile can be made offline to test that with.)
PROFILED_MODES = {"RGB": "RGB", "RGBA": "RGB"}


def in_srgb(img: Image.Image) -> Image.Image:
    """`img` converted from its embedded ICC profile to sRGB (relative colorimetric, as browsers do).

    Unchanged: no profile, one that changes no colour (sRGB's), a profile that cannot be read or does
    not fit the image's mode (left as stored, as viewers that ignore profiles show it), other modes
    (grey, palette, CMYK, 16-bit grey) and images with a transparent colour key.
    """
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in PROFILED_MODES or "transparency" in img.info or ImageCms is None:
        return img
    transform = _to_srgb(bytes(icc), img.mode)
    return img if transform is None else ImageCms.applyTransform(img, transform)


@functools.lru_cache(maxsize=16)
def _to_srgb(icc: bytes, mode: str):
    """The LittleCMS transform from the profile `icc` for images of `mode` to sRGB (the same mode);
    None when the profile cannot be used or changes no colour by more than a level (sRGB's own, under
    whatever name). Cached: a dataset's photos share a few profiles."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if profile.profile.xcolor_space.strip() != PROFILED_MODES[mode]:
            return None
        srgb = ImageCms.createProfile("sRGB")
        intent = ImageCms.Intent.RELATIVE_COLORIMETRIC
        transform = ImageCms.buildTransform(profile, srgb, mode, mode, renderingIntent=intent)
        return None if _changes_nothing(transform, mode) else transform
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


def _changes_nothing(transform, mode: str) -> bool:
    """Whether `transform` moves no colour of a 16-level grid of the RGB cube by more than one level
    (then converting would only round)."""
    levels = np.linspace(0, 255, 16).round().astype(np.uint8)
    cube = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(64, 64, 3)
    if mode == "RGBA":
        cube = np.concatenate([cube, np.full((64, 64, 1), 255, np.uint8)], -1)
    moved = np.asarray(ImageCms.applyTransform(Image.fromarray(cube), transform)).astype(int)
    return int(np.abs(moved[..., :3] - cube[..., :3].astype(int)).max()) <= 1
