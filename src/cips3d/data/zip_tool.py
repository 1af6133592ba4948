"""Pack images into a StyleGAN2-ADA-layout zip at one resolution: what `cips3d dataset` runs.

The layout is the one of StyleGAN2-ADA's `dataset_tool.py` (spec 4.6): PNGs named
`00000/img00000000.png`, 1000 per folder, stored uncompressed in the zip, plus a `dataset.json` with
`{"labels": null}` (CIPS-3D trains without labels). Mirrored copies are not written: `ImageDataset(...,
xflip=True)` makes them at load time, at no cost on disk.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from cips3d.data.images import (
    FolderSource,
    ZipSource,
    check_whole_aspects,
    decode_rgb_sized,
    kept_rows,
    open_image_source,
    scan_images,
    skip_unreadable,
    warn_cropped,
    warn_enlarged,
    warn_skipped,
)
from cips3d.errors import ConfigError, UserError
from cips3d.io.files import atomic_write, warn_of_leftover_writes

IMAGES_PER_FOLDER = 1000
# PNG is lossless at every level; level 1 writes much faster than the default 6, and inflating (what
# training does) costs about the same whatever the level.
PNG_COMPRESS_LEVEL = 1
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can record


@dataclass(frozen=True)
class ZipStats:
    """What `folder_to_zip` wrote."""

    dest: Path
    """The zip archive written."""
    resolution: int
    """Side of every image in it, in pixels."""
    num_written: int
    """Images in the archive."""
    skipped: tuple[str, ...]
    """'where: why' of each source file left out because it could not be read."""
    width: int | None = None
    """Width of every image, when not `resolution` (not square)."""
    smallest_side: int | None = None
    """The fewest rows a source image brought to the target (`kept_rows`; below `resolution`: some were
    enlarged)."""

    @property
    def num_skipped(self) -> int:
        """Source files left out because they could not be read."""
        return len(self.skipped)


def archive_name(index: int) -> str:
    """Name of image `index` in the archive: `00000/img00000000.png`, 1000 images per folder."""
    return f"{index // IMAGES_PER_FOLDER:05d}/img{index:08d}.png"


def encode_png(pixels: np.ndarray) -> bytes:
    """uint8 [H, W, 3] -> PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def _member(name: str) -> zipfile.ZipInfo:
    """A member with a fixed timestamp, so the same images always give a byte-identical zip."""
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16  # rw-r--r-- when extracted
    return info


def check_zip_destination(dest: Path) -> None:
    """A dataset is written to a .zip path (any other file there is the user's, not ours to replace)."""
    if dest.suffix.lower() != ".zip":
        raise UserError(f"the destination must be a .zip file, got {dest}.")
    if dest.is_dir():
        raise UserError(f"{dest} is a folder; give the path of the .zip file to write.")


def write_image_zip(dest: str | os.PathLike, pngs: Iterable[bytes]) -> int:
    """Write PNG-encoded images to a StyleGAN2-ADA-layout zip, atomically; returns how many were written.

    The archive appears only once complete: if `pngs` raises midway, `dest` is left as it was. Members
    carry a fixed timestamp, so the same images give the same bytes. Any producer of images (a folder, a
    procedural generator) can feed it.
    """
    check_zip_destination(Path(dest))
    warn_of_leftover_writes(dest)  # a dataset write killed earlier leaves a temporary file of its size
    count = 0

    def write(tmp: str) -> None:
        nonlocal count
        # ZIP_STORED as in StyleGAN2-ADA: PNGs are already compressed, and stored members read fastest.
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for png in pngs:
                archive.writestr(_member(archive_name(count)), png)
                count += 1
            archive.writestr(_member("dataset.json"), json.dumps({"labels": None}))

    atomic_write(dest, write)
    return count


def _convert(data: bytes, resolution: int, width: int | None, whole: bool) -> tuple[bytes, tuple[int, int]]:
    """PNG bytes of the converted image, and the (width, height) it had upright."""
    pixels, size = decode_rgb_sized(data, resolution, width, whole)
    return encode_png(pixels), size


def _converting(
    source: FolderSource | ZipSource, resolution: int, workers: int, width: int | None, whole: bool
) -> Iterator[tuple[str, Future]]:
    """(name, future PNG bytes) for each source image, in source order.

    Files are read here, in one thread (a zip handle is not shared between threads); decoding, LANCZOS
    and encoding run in `workers` threads, since PIL releases the GIL for them. At most a few images per
    worker are in flight, so memory stays bounded on any dataset size.
    """
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[tuple[str, Future]] = deque()
        for name in source.names:
            try:
                future = pool.submit(_convert, source.read(name), resolution, width, whole)
            # A file we may not read, or a damaged zip member (BadZipFile, zlib.error): counted as unreadable.
            except Exception as err:
                future = Future()
                future.set_exception(err)
            pending.append((name, future))
            if len(pending) > 2 * workers:
                yield pending.popleft()
        yield from pending


def _check_paths(source: Path, dest: Path, resolution: int, width: int | None) -> None:
    if resolution < 1 or width is not None and width < 1:
        raise ConfigError(f"resolution and width must be at least 1 pixel, got {resolution}, {width}.")
    check_zip_destination(dest)
    # resolve() also spells out a path through a folder that does not exist yet (x/../data.zip), which
    # exists() cannot see through: such a destination once replaced its source.
    if source.exists() and source.resolve() == dest.resolve():
        raise UserError(f"the destination {dest} is the source itself; write to another file.")


def folder_to_zip(
    source: str | os.PathLike,
    dest_zip: str | os.PathLike,
    resolution: int,
    strict: bool = False,
    progress: bool = True,
    workers: int | None = None,
    width: int | None = None,
    whole: bool = False,
) -> ZipStats:
    """Pack the images of a folder (at any depth) or a zip into a StyleGAN2-ADA-layout zip.

    Images are taken in sorted path order (as `ImageDataset` reads them), converted to RGB, centre-cropped
    to a square when they are not, resized with PIL LANCZOS to resolution x resolution and written as PNG
    (with `width`: cropped to that aspect and resized to resolution x width; with `whole` too, resized
    without cropping, as panoramas must be).
    Every image is fully decoded, so any unreadable file is found: it is skipped and counted in one
    `SkippedImagesWarning`, or, with `strict`, raises a `UserError` naming it. The zip is written to a
    temporary file beside `dest_zip` and renamed when complete, so a failure never leaves a partial one.

    Args:
        source: image folder or zip archive.
        dest_zip: the .zip to write (replaced if it exists).
        resolution: side of the written images in pixels.
        strict: fail on the first unreadable file instead of skipping it.
        progress: show a tqdm progress bar.
        workers: threads decoding and resizing (default: up to 8, one per CPU core).
        width: width of the written images, when not square.
        whole: resize without cropping (360-degree panoramas, whose ends meet).

    Returns:
        `ZipStats` with the numbers of images written and skipped.
    """
    dest = Path(dest_zip)
    _check_paths(Path(source), dest, resolution, width)
    src = open_image_source(source)
    workers = workers or min(8, os.cpu_count() or 1)
    bad: list[str] = []
    sizes: list[tuple[int, int]] = []  # of the images read, for the crop and enlargement warnings

    def pngs() -> Iterator[bytes]:
        with tqdm(total=len(src.names), unit="img", desc="dataset", disable=not progress) as bar:
            for name, future in _converting(src, resolution, workers, width, whole):
                bar.update()
                try:
                    png, size = future.result()
                # PIL raises many kinds of errors for malformed files (OSError, SyntaxError, ...).
                except Exception as err:
                    skip_unreadable(src.location(name), err, strict, bad)
                    continue
                sizes.append(size)
                yield png
        if len(bad) == len(src.names):  # raised inside the write, so no empty zip replaces `dest`
            raise UserError(f"none of the {len(bad)} images in {source} could be read (first: {bad[0]}).")

    try:
        if whole:  # every image's shape, before anything is written (headers only)
            names, sizes, _ = scan_images(src, strict=False)
            check_whole_aspects([src.location(n) for n in names], sizes, resolution, width)
        written = write_image_zip(dest, pngs())
    finally:
        src.close()
    warn_skipped(bad, len(src.names))
    smallest = min((kept_rows(size, resolution, width, whole) for size in sizes), default=None)
    if not whole:  # as training and metrics say it of the same images
        warn_cropped(sizes, resolution, width)
    warn_enlarged(source, smallest, resolution, width)
    return ZipStats(dest, resolution, written, tuple(bad), width, smallest)
