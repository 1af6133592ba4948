"""Real images for training: a folder or a StyleGAN2-ADA zip -> uint8 tensors [3, R, R].

The reals of CIPS-3D come from the StyleGAN2-ADA dataset (spec 4.6): a zip of PNGs, optionally doubled
with mirrored copies (`xflip`), each resized with PIL LANCZOS to the current training resolution when it
is loaded. `ImageDataset` reads the same zips, and plain image folders, the same way.
"""

from __future__ import annotations

import hashlib
import io
import operator
import os
import shutil
import tempfile
import uuid
import warnings
import weakref
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset

from cips3d.config import MAX_IMG_SIZE, check_switch, is_whole_number
from cips3d.data.colour import in_srgb
from cips3d.errors import ConfigError, UserError
from cips3d.io.files import path_of

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
EXIF_ORIENTATION = 0x0112  # the EXIF tag that says how a photo is turned (1 upright; 5-8 a quarter turn)
# Formats whose EXIF is read with the header; a PNG's would need the whole file decoded, and cameras and
# phones write JPEG (or HEIF, which PIL does not read) anyway.
EXIF_FORMATS = ("JPEG", "MPO", "TIFF", "WEBP")


class UpscaledImagesWarning(UserWarning):
    """The images are smaller than the resolution asked for, so they are enlarged (and blurred)."""


class UndecodableImageWarning(UserWarning):
    """An image passed the scan but failed to decode when loaded; another takes its place."""


class SkippedImagesWarning(UserWarning):
    """Some files of a dataset could not be read as images and were left out."""


def is_image_name(name: str) -> bool:
    """Whether a '/'-separated relative path names an image we read (by extension, any case).

    Hidden files and folders (a part starting with '.', e.g. macOS `._x.png` resource forks) and
    `__MACOSX/` are left out: they are copies or metadata, never images of the dataset.
    """
    parts = PurePosixPath(name).parts
    if any(part.startswith(".") or part == "__MACOSX" for part in parts):
        return False
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _unseen_folders(folder: str, subfolders: list[str], seen: set[str], root: str) -> list[str]:
    """The subfolders whose real folder has not been walked yet (then marked seen): a second link to one
    folder adds nothing. Real folders come before links to them. A link to a folder that holds the data
    folder `root` (real path) is a UserError: it read every image around the data as data (a link to
    `..` took 346 images from the parent's tree)."""
    kept = []
    for name in sorted(subfolders, key=lambda d: (os.path.islink(os.path.join(folder, d)), d)):
        real = os.path.realpath(os.path.join(folder, name))
        if real != root and (root + os.sep).startswith(real.rstrip(os.sep) + os.sep):
            raise UserError(f"{shown(os.path.join(folder, name))} links to {shown(real)}, a folder holding "
                            "the data folder itself: every image around the data would be read as data; "
                            "remove the link.")  # fmt: skip
        if real not in seen:
            seen.add(real)
            kept.append(name)
    return kept


def shown(text: str) -> str:
    """`text` as it is, or quoted with escapes when it holds what would break a one-line message or
    fail to print (a newline, a byte of a name that is not UTF-8)."""
    return text if text.isprintable() else ascii(text)


def _not_special(path: str) -> bool:
    """False for a named pipe, socket or device (reading a pipe named x.png waited forever); a broken
    link stays, to be counted among the unreadable files."""
    return os.path.isfile(path) or not os.path.exists(path)


class FolderSource:
    """The images under a folder, at any depth, named by their '/'-separated path relative to it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        names = []
        self.unlisted: list[tuple[str, OSError]] = []
        """Subfolders that could not be listed (no permission), with why: named beside unreadable files."""
        real_root = os.path.realpath(root)
        seen = {real_root}  # each real folder is walked once, whatever links lead to it

        def unlisted(err: OSError) -> None:  # os.walk dropped such a folder without a word
            if os.path.realpath(err.filename) != real_root:  # the root itself: said by who opened it
                self.unlisted.append((shown(str(err.filename)), err))

        # Linked folders are part of the data (each real folder walked once).
        for folder, subfolders, files in os.walk(root, followlinks=True, onerror=unlisted):
            subfolders[:] = _unseen_folders(folder, subfolders, seen, real_root)
            rel = Path(folder).relative_to(root)
            found = [f for f in files if is_image_name((rel / f).as_posix())]
            names += [(rel / f).as_posix() for f in found if _not_special(os.path.join(folder, f))]
        self.names: tuple[str, ...] = tuple(sorted(names))

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def size_of(self, name: str) -> int:
        """Bytes of the file `name`."""
        return (self.root / name).stat().st_size

    def location(self, name: str) -> str:
        """Where `name` is, for messages."""
        return shown(str(self.root / name))

    def close(self) -> None:
        """Nothing stays open between reads."""


UTF8_NAME_FLAG = 0x800  # bit 11 of a zip member's flags: its name is UTF-8 (else, by the format, cp437)


def zip_member_name(info: zipfile.ZipInfo) -> str:
    """A zip member's name as the folder it was made from spells it. Info-ZIP's `zip` (Linux's own)
    stores UTF-8 names without the UTF-8 flag, which Python reads as cp437 ('phötö' as 'ph├╢t├╢'): such a
    name is read again as UTF-8 where its bytes are UTF-8 (true DOS names almost never are). A run on
    the folder was refused on a plain zip of it, its names no longer matching."""
    if info.flag_bits & UTF8_NAME_FLAG or info.filename.isascii():
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


class ZipSource:
    """The images inside a zip archive, at any depth (StyleGAN2-ADA layout: `00000/img00000000.png`).

    The archive is opened lazily, once per process: a handle inherited through fork shares its file offset
    with the parent (concurrent reads would corrupt each other), and an open handle cannot be pickled to a
    spawned DataLoader worker. `dataset.json` and other non-image members are ignored.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._pid: int | None = None
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
        named = [(zip_member_name(i), i) for i in infos]
        self._members = {name: i.filename for name, i in named}  # our name -> the archive's
        self._sizes = {name: i.file_size for name, i in named}
        members = [n for n in self._sizes if not n.endswith("/") and is_image_name(n)]
        self.names: tuple[str, ...] = tuple(sorted(members))

    def size_of(self, name: str) -> int:
        """Bytes of the member `name`, uncompressed."""
        return self._sizes[name]

    def archive_name(self, name: str) -> str:
        """The member `name` as Python's zipfile names it (cp437 where the UTF-8 flag is missing)."""
        return self._members[name]

    def has_member(self, name: str) -> bool:
        """Whether the archive holds a member `name`, image or not (`dataset.json`, say)."""
        return name in self._sizes

    def read(self, name: str) -> bytes:
        if self._zip is None or self._pid != os.getpid():
            self._zip = zipfile.ZipFile(self.path)
            self._pid = os.getpid()
        return self._zip.read(self._members[name])

    def location(self, name: str) -> str:
        return shown(f"{self.path}:{name}")

    def close(self) -> None:
        # Close only our own handle: one inherited from the parent process is the parent's to close.
        if self._zip is not None and self._pid == os.getpid():
            self._zip.close()
        self._zip, self._pid = None, None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_zip": None, "_pid": None}


def _starts_like_a_zip(path: Path) -> bool:
    """Whether a file begins as a zip does (a local file header), whatever its end."""
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def open_image_source(path: str | os.PathLike) -> FolderSource | ZipSource:
    """A folder or zip archive of images; anything else, or one without images, is a `UserError`."""
    path = Path(path)
    if path.is_dir():
        source: FolderSource | ZipSource = FolderSource(path)
    elif not path.exists():
        raise UserError(f"no folder or zip archive at {path}.")
    elif not zipfile.is_zipfile(path):
        if _starts_like_a_zip(path):
            raise UserError(f"{path} is a damaged or incomplete zip archive (its table of contents, at the "
                            "end, is missing); copy or write it again.")  # fmt: skip
        if path.is_file() and path.stat().st_size == 0:
            raise UserError(f"{path} is an empty file, neither a folder of images nor a zip archive.")
        raise UserError(f"{path} is neither a folder of images nor a zip archive.")
    else:
        source = ZipSource(path)
    if not source.names:
        kinds = ", ".join(ext.lstrip(".") for ext in IMAGE_EXTENSIONS)
        raise UserError(f"no images ({kinds}) found in {path}.")
    return source


def crop_resize(
    img: Image.Image, resolution: int, width: int | None = None, whole: bool = False
) -> Image.Image:
    """Centre-crop to the aspect of resolution x width (default: a square), then resize with LANCZOS to
    `resolution` rows and `width` columns. With `whole` nothing is cropped, the image is resized as it
    is (a 360-degree panorama must keep both ends, which meet).

    Images already of that size are returned unchanged, so nothing is resampled needlessly.
    """
    target = (resolution if width is None else width, resolution)  # PIL's (width, height)
    cols, rows = img.size
    if not whole and cols * target[1] != rows * target[0]:
        keep_cols = min(cols, round(rows * target[0] / target[1]))
        keep_rows = min(rows, round(cols * target[1] / target[0]))
        left, top = (cols - keep_cols) // 2, (rows - keep_rows) // 2
        img = img.crop((left, top, left + keep_cols, top + keep_rows))
    if img.size != target:
        img = img.resize(target, Image.Resampling.LANCZOS)
    return img


def _eight_bit_rgb(img: Image.Image) -> Image.Image:
    """An image of any mode as 8-bit RGB. PIL's own conversion clips 16-bit and 32-bit grey to 255 (a
    16-bit PNG would come out white) and float images to 0..255 (a 0..1 TIFF would come out black), so
    those are scaled here: integers as 16-bit values, floats as values in 0..1."""
    if img.mode == "RGB" and "transparency" not in img.info:
        return img
    if img.mode in TRANSPARENT_MODES or "transparency" in img.info:
        return _on_white(img)
    if img.mode.startswith("I") or img.mode == "F":
        values = np.asarray(img, dtype=np.float64)
        if img.mode == "F":
            if not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1):
                raise ValueError("a floating-point image with values outside 0..1")
            values = values * 255
        else:
            values = np.clip(values, 0, 65535) / 257
        grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(grey[..., None], 3, axis=-1))
    return img.convert("RGB")


TRANSPARENT_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
BACKGROUND = (255, 255, 255)
"""What transparent pixels become: white, as a page shows them (dropping the alpha channel instead
showed whatever colour the transparent pixels happen to store)."""


def _on_white(img: Image.Image) -> Image.Image:
    """An image with transparency (alpha or a transparent palette entry) composited onto BACKGROUND."""
    rgba = img.convert("RGBA")
    ground = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
    return Image.alpha_composite(ground, rgba).convert("RGB")


def _quietly_opened(data: bytes) -> Image.Image:
    """`Image.open` without PIL's warnings about the user's own files (a large image "could be a
    decompression bomb", corrupt EXIF data): they named no file and the image is read all the same."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", message="Corrupt EXIF data")
        img = Image.open(io.BytesIO(data))
        _orientation(img)  # the EXIF is read now, inside these filters
        return img


def upright_rgb(data: bytes) -> Image.Image:
    """Encoded image bytes -> an 8-bit RGB image, turned upright by its EXIF orientation and converted
    to sRGB from its colour profile (as photo viewers show it); see `decode_rgb`."""
    with _quietly_opened(data) as img:
        img.load()  # the pixels outlive the file
        upright = ImageOps.exif_transpose(img) if _orientation(img) != 1 else img
        return _eight_bit_rgb(in_srgb(upright))  # its colour profile applied (P3, Adobe RGB)


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation of an opened image (1, upright, when it has none or is not of EXIF_FORMATS)."""
    if img.format not in EXIF_FORMATS:
        return 1
    return img.getexif().get(EXIF_ORIENTATION, 1)


def decode_rgb(
    data: bytes, resolution: int | None = None, width: int | None = None, whole: bool = False
) -> np.ndarray:
    """Encoded image bytes -> uint8 [H, W, 3] RGB (grey, palette and RGBA converted; alpha dropped; 16-bit
    and float images scaled; turned upright by their EXIF orientation and converted to sRGB from their
    colour profile, as photo viewers show them).

    With `resolution`, the image is centre-cropped to a square (or to resolution x `width`) and
    LANCZOS-resized, or resized whole (`crop_resize`).
    """
    return decode_rgb_sized(data, resolution, width, whole)[0]


def decode_rgb_sized(
    data: bytes, resolution: int | None = None, width: int | None = None, whole: bool = False
) -> tuple[np.ndarray, tuple[int, int]]:
    """`decode_rgb`'s pixels, and the (width, height) the image had upright before any resizing (what
    says whether it was enlarged)."""
    rgb = upright_rgb(data)
    size = rgb.size
    if resolution is not None:
        rgb = crop_resize(rgb, resolution, width, whole)
    return np.array(rgb, dtype=np.uint8), size


def unreadable_reason(err: BaseException) -> str:
    """A short reason for a failed read, without PIL's `<_io.BytesIO object at 0x...>` noise, the path
    an OSError repeats, or a closing full stop (it goes inside a sentence)."""
    if isinstance(err, UnidentifiedImageError):
        return "not a known image format"
    if isinstance(err, Image.DecompressionBombError):
        limit = Image.MAX_IMAGE_PIXELS * 2  # PIL warns past its limit and refuses past twice it
        return f"larger than PIL's limit of {limit:,} pixels, its guard against decompression bombs"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return (str(err) or type(err).__name__).rstrip(".")


def unreadable(location: str, err: BaseException) -> str:
    """'where: why' of a file that could not be read, as the messages naming the first such file say it."""
    return f"{location}: {unreadable_reason(err)}"


def skip_unreadable(location: str, err: BaseException, strict: bool, bad: list[str]) -> None:
    """A file that is no readable image: with `strict` a UserError naming it and why, else its
    'where: why' added to `bad` (what the skipped-files warning names first)."""
    if strict:
        raise UserError(f"{location} is not a readable image ({unreadable_reason(err)}).") from None
    bad.append(unreadable(location, err))


SKIPPED_NAMED = 3  # unreadable files a warning names (what to fix first); the rest are counted


def skipped_message(bad: list[str] | tuple[str, ...], total: int) -> str:
    """'skipped N of T images that could not be read (a: why; b: why; and 4 more)'."""
    named = "; ".join(bad[:SKIPPED_NAMED])
    more = f"; and {len(bad) - SKIPPED_NAMED} more" if len(bad) > SKIPPED_NAMED else ""
    return f"skipped {len(bad)} of {total} images that could not be read ({named}{more})"


def warn_skipped(bad: list[str], total: int) -> None:
    """One warning for all the unreadable files of a dataset (none when `bad` is empty)."""
    if bad:
        warnings.warn(skipped_message(bad, total), SkippedImagesWarning, stacklevel=3)


def _probe(source: FolderSource | ZipSource, name: str) -> tuple[int, int]:
    """(width, height) of one image after a cheap integrity check (header, PNG chunk CRCs). A file the
    check finds fault with is decoded whole, and kept when that works: the rule is the packer's and
    the loader's, "PIL decodes it" (a PNG without its closing IEND chunk fails the check alone)."""
    data = source.read(name)
    with _quietly_opened(data) as img:
        width, height = img.size
        turned = _orientation(img) in (5, 6, 7, 8)  # a quarter turn upright
        try:
            img.verify()
        except Exception:  # noqa: BLE001 - PIL's many kinds of errors; the full decode below decides
            upright_rgb(data)
    return (height, width) if turned else (width, height)


def scan_images(
    source: FolderSource | ZipSource, strict: bool
) -> tuple[list[str], list[tuple[int, int]], list[str]]:
    """Readable names, their sizes, and the locations of unreadable files; `strict` fails on the first."""
    names, sizes, bad = [], [], []
    for folder, err in getattr(source, "unlisted", ()):
        if strict:
            raise UserError(f"the folder {folder} cannot be listed ({unreadable_reason(err)}).")
        bad.append(f"{folder}/ (a folder that cannot be listed): {unreadable_reason(err)}")
    for name in source.names:
        try:
            sizes.append(_probe(source, name))
        # PIL raises many kinds of errors for malformed files (OSError, SyntaxError, struct.error, ...).
        except Exception as err:
            skip_unreadable(source.location(name), err, strict, bad)
        else:
            names.append(name)
    return names, sizes, bad


def data_fingerprint(source: FolderSource | ZipSource, names: list[str]) -> str:
    """A short hash of the images `names` of `source`: their relative names (less a folder all of them
    share, as `zip -r data.zip data` adds) and byte sizes. Contents are not read: an image rewritten at
    the same byte size keeps the fingerprint."""
    return _fingerprint([(name, source.size_of(name)) for name in names])


def cp437_fingerprint(source: FolderSource | ZipSource, names: list[str]) -> str | None:
    """The fingerprint these images had before `zip_member_name` read unflagged UTF-8 names as UTF-8
    (their names as cp437, in that order), so that runs recorded then still resume; None where the
    names read the same either way."""
    if not isinstance(source, ZipSource) or all(source.archive_name(n) == n for n in names):
        return None
    return _fingerprint(sorted((source.archive_name(n), source.size_of(n)) for n in names))


def _fingerprint(sized_names: list[tuple[str, int]]) -> str:
    parts = [PurePosixPath(name).parts for name, _ in sized_names]
    while all(len(p) > 1 for p in parts) and len({p[0] for p in parts}) == 1:
        parts = [p[1:] for p in parts]
    digest = hashlib.sha1()
    for (_, size), part in zip(sized_names, parts, strict=True):
        line = f"{'/'.join(part)}\t{size}\n"
        digest.update(line.encode("utf-8", "surrogateescape"))  # a name not in UTF-8: hashed as its bytes
    return digest.hexdigest()[:16]


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images [..., 3, H, W] in [0, 255] -> float32 in [-1, 1] as x / 127.5 - 1 (0 -> -1, 255 -> 1).

    Call it after moving the batch to the device: uint8 is a quarter of the bytes to transfer.
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"to_float expects uint8 images, got {images.dtype}")
    return images.to(torch.float32) / 127.5 - 1


def _native_resolution(
    names: list[str], sizes: list[tuple[int, int]], source: FolderSource | ZipSource
) -> int:
    """The one square size shared by all images; otherwise a `UserError` asking for a resolution."""
    first = source.location(names[0])
    first_w, first_h = sizes[0]
    for name, (w, h) in zip(names, sizes, strict=True):
        if (w, h) != (first_w, first_h):
            raise UserError(
                f"{source.location(name)} is {w}x{h} but {first} is {first_w}x{first_h}; "
                "give a resolution to crop and resize all images to one square size."
            )
    if first_w != first_h:
        raise UserError(
            f"{first} is {first_w}x{first_h}, not square; give a resolution to crop and resize it."
        )
    return first_w


def kept_rows(size: tuple[int, int], resolution: int, width: int | None = None, whole: bool = False) -> int:
    """Rows of an image (width, height) that reach the target: all of them when it is resized whole,
    else those of the crop to the target's aspect (a square target: the short side). Fewer than
    `resolution` means the image is enlarged; a 20x200 image cropped to 4:1 keeps 5 of its rows."""
    w, h = size
    return h if whole else min(h, w * resolution // (width or resolution))


def enlarged_message(
    path: str | os.PathLike, smallest: int | None, resolution: int, width: int | None = None
) -> str | None:
    """What to say when the fewest rows a dataset's images bring to the target (`kept_rows`) are fewer
    than its `resolution`."""
    if smallest is None or smallest >= resolution:
        return None
    if width is None or width == resolution:
        return (f"the smallest images of {path} are {smallest} px on their short side, so they are enlarged "
                f"to {resolution} px")  # fmt: skip
    return (f"the smallest images of {path} keep {smallest} rows in their crop to {width}x{resolution}, so "
            f"they are enlarged to {resolution} rows")  # fmt: skip


def warn_enlarged(
    path: str | os.PathLike, smallest: int | None, resolution: int, width: int | None = None
) -> None:
    """One warning when a dataset's images are enlarged (`enlarged_message`), beside `warn_skipped`."""
    message = enlarged_message(path, smallest, resolution, width)
    if message:
        warnings.warn(message, UpscaledImagesWarning, stacklevel=3)


WHOLE_ASPECT_TOLERANCE = 0.05  # resizing whole by more than this would visibly squash or stretch


class CroppedImagesWarning(UserWarning):
    """A dataset's images lose much of their picture to the crop to a non-square target shape."""


def aspect_against(size: tuple[int, int], resolution: int, width: int | None) -> float:
    """An image's (width, height) aspect over the target's (`width` or `resolution` by `resolution`):
    1 for the same shape, 2 for an image twice as wide."""
    return (size[0] / size[1]) / ((width or resolution) / resolution)


SQUARE_CROP_WARNED = 0.5  # a square crop keeping less than half the picture: images wider than 2:1


def warn_cropped(sizes: list[tuple[int, int]], resolution: int, width: int | None) -> None:
    """One warning when a non-square target (`width`) crops images of another shape by more than the
    tolerance: square faces trained at 64x32 lose half their height, which nothing said before. A
    square crop of photos is the usual recipe (FFHQ, LSUN): it is said only of images more than twice
    as wide as high or the reverse (panoramas trained without --panorama kept a quarter, silently)."""
    aspects = [aspect_against(size, resolution, width) for size in sizes]
    kept = min(min(a, 1 / a) for a in aspects)  # the share of the picture the crop keeps
    if width is None:
        if kept < SQUARE_CROP_WARNED:
            wide = max(aspects) > 1 / min(aspects)  # the most cropped are wide ones: panoramas, perhaps
            hint = " (panoramas? `cips3d train2d --panorama` trains them whole)" if wide else ""
            warnings.warn(f"the images are centre-cropped to squares, some keeping only {kept:.0%} of their "
                          f"picture{hint}", CroppedImagesWarning, stacklevel=3)  # fmt: skip
        return
    if kept < 1 - WHOLE_ASPECT_TOLERANCE:
        warnings.warn(f"the images are centre-cropped to the {width}x{resolution} shape, some keeping only "
                      f"{kept:.0%} of their picture (a width matching their shape keeps all of it)",
                      CroppedImagesWarning, stacklevel=3)  # fmt: skip


def check_whole_aspects(
    locations: list[str], sizes: list[tuple[int, int]], resolution: int, width: int | None
) -> None:
    """A `UserError` when an image resized whole (a panorama) would change shape: every image's aspect
    must match the target's within `WHOLE_ASPECT_TOLERANCE`. When none does, the advice is a width that
    fits the first; when some do, the first odd one is named, to crop or leave out."""
    target_w = width or resolution

    fitting = [abs(aspect_against(size, resolution, width) - 1) <= WHOLE_ASPECT_TOLERANCE for size in sizes]
    if all(fitting):
        return
    odd = fitting.index(False)
    (w, h), where = sizes[odd], locations[odd]
    squash = f"{where} is {w}x{h}, so resizing it whole to {target_w}x{resolution} would squash it"
    if not any(fitting):
        raise UserError(f"{squash}; use a width of {round(resolution * w / h)} px at this height (train2d "
                        "--width), or images of that shape.")  # fmt: skip
    fit = sum(fitting)
    others, theirs = ("the image that fits", "its") if fit == 1 else (f"the {fit} images that fit", "their")
    raise UserError(f"{squash}, unlike {others}; crop it to {theirs} shape or leave it out.")


def _first_to_mark(marks: str, name: str) -> bool:
    """Whether this process is the first of those sharing the folder `marks` to mark `name` (a file made
    exclusively); True when the folder cannot be used (a warning too many beats none)."""
    try:
        os.makedirs(marks, exist_ok=True)
        os.close(
            os.open(os.path.join(marks, hashlib.sha1(name.encode()).hexdigest()), os.O_CREAT | os.O_EXCL)
        )
    except FileExistsError:
        return False
    except OSError:
        return True
    return True


def _remove_marks(marks: str, owner: int) -> None:
    """Remove the marks folder, in the process that made the dataset only (a forked worker's copy of it
    is collected too, while the others still mark)."""
    if os.getpid() == owner:
        shutil.rmtree(marks, ignore_errors=True)


class ImageDataset(Dataset):
    """The images of a folder (at any depth) or a StyleGAN2-ADA zip, as uint8 tensors [3, R, R] (RGB),
    or [3, R, width] with `width`.

    Images are ordered by their sorted relative path, so a folder and a zip of the same files give the
    same items. With `resolution`, every image whose size differs is resized with PIL LANCZOS; a non-square
    image is first centre-cropped to a square (its shorter side). Without it, all images must share one
    square size, which becomes `resolution`. With `xflip`, the length doubles as in StyleGAN2-ADA: item
    i >= N is the horizontal mirror of item i - N.

    Every file is checked once when the dataset is built (header and, for PNG, chunk checksums). Unreadable
    ones are left out with one `SkippedImagesWarning` counting them, or, with `strict`, raise a `UserError`
    naming the first. A JPEG truncated mid-data passes that cheap check; when it fails to decode at load
    time the next image that decodes takes its place, with one `UndecodableImageWarning` naming it (the
    same replacement every time, so an exact resume stays exact). `cips3d dataset` decodes every image
    and so leaves such files out of the zip it writes.

    Zips are opened lazily once per process, so the dataset is safe in DataLoader worker processes.

    Args:
        path: image folder or zip archive.
        resolution: side R of the returned images in pixels, or None for the images' own size.
        xflip: append mirrored copies (length 2N).
        strict: fail on the first unreadable file instead of skipping it.
        width: columns of the returned images, when they are not square (needs `resolution`).
        whole: resize without cropping (panoramas, whose left and right edges meet).
        enlarged_above: the size whose enlargement of the images is warned of (default `resolution`;
            a progressive run's largest stage, whose first stage's size would understate it; 0: none).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        resolution: int | None = None,
        xflip: bool = False,
        strict: bool = False,
        width: int | None = None,
        whole: bool = False,
        enlarged_above: int | None = None,
    ) -> None:
        for name, side in (("resolution", resolution), ("width", width)):  # 8.5 or 10**6 failed per image
            if side is not None and not (is_whole_number(side) and 1 <= side <= MAX_IMG_SIZE):
                raise ConfigError(
                    f"{name} must be a whole number of pixels from 1 to {MAX_IMG_SIZE}, got {side!r}."
                )
        for name, flag in (("xflip", xflip), ("strict", strict), ("whole", whole)):
            check_switch(flag, name)
        if resolution is None and (width is not None or whole):
            raise ConfigError("a width, or resizing images whole, needs a resolution.")
        self.width, self.whole = width, whole
        self.path = path_of(path, "the data")
        self.xflip = xflip
        self._source = open_image_source(path)
        names, sizes, bad = scan_images(self._source, strict)
        if not names:
            raise UserError(f"none of the {len(bad)} images in {path} could be read (first: {bad[0]}).")
        warn_skipped(bad, len(self._source.names))
        self.names: tuple[str, ...] = tuple(names)
        self.num_skipped = len(bad)
        self.skipped: tuple[str, ...] = tuple(bad)
        """'where: why' of each file left out because it could not be read."""
        self.fingerprint = data_fingerprint(self._source, names)
        """Names and byte sizes of the readable images, hashed: equal for a moved copy of the data,
        different when images are added, removed, renamed or rewritten at another size."""
        self.cp437_fingerprint = cp437_fingerprint(self._source, names)
        """The fingerprint a zip of unflagged UTF-8 names had when they were read as cp437 (None: the
        same names either way)."""
        self.resolution = (
            resolution if resolution is not None else _native_resolution(names, sizes, self._source)
        )
        if whole:
            check_whole_aspects([self._source.location(n) for n in names], sizes, self.resolution, width)
        else:
            warn_cropped(sizes, self.resolution, width)
        if enlarged_above != 0:
            target = self.resolution if enlarged_above is None else enlarged_above
            warn_enlarged(path, min(kept_rows(s, target, width, whole) for s in sizes), target, width)
        self._undecodable: set[str] = set()  # names already met, in this process
        # Where the processes reading this dataset (DataLoader workers) mark the names warned of, so that
        # the warning is said once, not once per worker; made when first needed, removed with `self`.
        self._warned_marks = os.path.join(tempfile.gettempdir(), f"cips3d-undecodable-{uuid.uuid4().hex}")
        weakref.finalize(self, _remove_marks, self._warned_marks, os.getpid())
        self._source.close()  # workers reopen it lazily; nothing open is left to fork or pickle

    @property
    def num_images(self) -> int:
        """Readable images, without the mirrored copies."""
        return len(self.names)

    def __len__(self) -> int:
        return self.num_images * (2 if self.xflip else 1)

    def __getitem__(self, index: int) -> torch.Tensor:
        """uint8 [3, R, R] (or [3, R, width]); index i >= N (xflip only) is image i - N mirrored."""
        index = operator.index(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is out of range for a dataset of {len(self)} items")
        flip = index >= self.num_images
        pixels = self._decoded(index - self.num_images if flip else index)
        image = torch.from_numpy(pixels).permute(2, 0, 1)
        return (image.flip(-1) if flip else image).contiguous()

    def _decoded(self, i: int) -> np.ndarray:
        """The pixels of image i or, when it does not decode (a defect the cheap scan cannot see, such as
        a JPEG cut mid-data), of the next image that does: a long run is not stopped by one bad file."""
        for step in range(self.num_images):
            name = self.names[(i + step) % self.num_images]
            try:
                return decode_rgb(self._source.read(name), self.resolution, self.width, self.whole)
            # PIL raises many kinds of errors for malformed files (OSError, SyntaxError, struct.error, ...).
            except Exception as err:
                if name not in self._undecodable:
                    self._undecodable.add(name)
                    if _first_to_mark(self._warned_marks, name):
                        where = unreadable(self._source.location(name), err)
                        warnings.warn(f"{where}; the next image takes its place.", UndecodableImageWarning, 2)
        raise UserError(f"none of the images in {self.path} could be decoded.")

    def close(self) -> None:
        """Close this process's zip handle, if any (it reopens on the next read)."""
        self._source.close()

    def __repr__(self) -> str:
        return (
            f"ImageDataset({str(self.path)!r}, {self.num_images} images, "
            f"{self.width or self.resolution}x{self.resolution}, xflip={self.xflip})"
        )
