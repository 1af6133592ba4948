"""A small real-photo dataset that needs no download: the LFW face subset bundled with scikit-image.

`skimage.data.lfw_subset()` holds 200 grey 25x25 crops, the first 100 of them faces. We take the faces,
upscale them with PIL LANCZOS, repeat the grey channel as RGB and pack them like any other dataset, so
the whole pipeline can be watched on real photos (tiny, grey and few: a demonstration, not a benchmark).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from cips3d.data.zip_tool import encode_png, write_image_zip
from cips3d.errors import UserError

LFW_FACES = 100  # the first 100 images of lfw_subset() are faces, the rest are not


def lfw_faces(resolution: int) -> np.ndarray:
    """uint8 [100, R, R, 3] faces from scikit-image's bundled LFW subset, LANCZOS-resized."""
    try:
        from skimage import data  # noqa: PLC0415 (an optional heavy import, only for this recipe)
    except ImportError as err:
        raise UserError("the LFW recipe needs scikit-image (pip install scikit-image).") from err
    faces = (data.lfw_subset()[:LFW_FACES] * 255).round().astype(np.uint8)
    resized = [np.asarray(Image.fromarray(f).resize((resolution, resolution), Image.LANCZOS)) for f in faces]
    return np.repeat(np.stack(resized)[..., None], 3, axis=-1)


def write_lfw_dataset(dest: str | os.PathLike, resolution: int = 32) -> int:
    """Write the 100 LFW faces as a dataset zip; returns the count."""
    if resolution < 2:
        raise UserError(f"resolution must be at least 2, got {resolution}.")
    return write_image_zip(Path(dest), (encode_png(face) for face in lfw_faces(resolution)))
