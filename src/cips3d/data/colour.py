"""Images' embedded colour profiles (ICC) converted to sRGB, the space the networks' images are in.

A photo saved in Display P3 (phones) or Adobe RGB (cameras) stores other numbers for the same colour
than sRGB: read as sRGB they look washed out, so a model trained or fitted on them learns the wrong
colours. Viewers convert with the profile; so does `in_srgb` (RGB images), with PIL's LittleCMS.
"""

from __future__ import annotations

import functools
import io

from PIL import Image

try:
    from PIL import ImageCms
except ImportError:  # a Pillow built without LittleCMS: images are read as stored, as before
    ImageCms = None

# The modes whose profiles are applied, and the colour space their profile must be for. (CMYK photos
# would gain from their profiles too; no CMYK profile can be made offline to test that with.)
PROFILED_MODES = {"RGB": "RGB"}


def in_srgb(img: Image.Image) -> Image.Image:
    """`img` converted from its embedded ICC profile to sRGB (relative colorimetric, as browsers do).

    Unchanged: no profile, an sRGB one (nothing to do), a profile that cannot be read or does not fit
    the image's mode (left as stored, as viewers that ignore profiles show it), other modes (grey,
    palette, 16-bit) and images with a transparent colour key.
    """
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in PROFILED_MODES or "transparency" in img.info or ImageCms is None:
        return img
    transform = _to_srgb(bytes(icc), img.mode)
    return img if transform is None else ImageCms.applyTransform(img, transform)


@functools.lru_cache(maxsize=16)
def _to_srgb(icc: bytes, mode: str):
    """The LittleCMS transform from the profile `icc` for images of `mode` to sRGB RGB; None when there
    is nothing to convert or the profile cannot be used. Cached: a dataset's photos share a few."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if profile.profile.xcolor_space.strip() != PROFILED_MODES[mode]:
            return None
        srgb = ImageCms.createProfile("sRGB")
        if _same_primaries(profile, ImageCms.ImageCmsProfile(srgb)):
            return None  # an sRGB profile (its tone curve aside): converting would only round
        intent = ImageCms.Intent.RELATIVE_COLORIMETRIC
        return ImageCms.buildTransform(profile, srgb, mode, "RGB", renderingIntent=intent)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


def _same_primaries(a, b, tolerance: float = 0.002) -> bool:
    """Whether two RGB profiles have the same red, green and blue colorants (XYZ, D50)."""
    for colour in ("red", "green", "blue"):
        mine, theirs = (getattr(p.profile, f"{colour}_colorant") for p in (a, b))
        if mine is None or theirs is None:
            return False
        if max(abs(u - v) for u, v in zip(mine[0], theirs[0], strict=True)) >= tolerance:
            return False
    return True
