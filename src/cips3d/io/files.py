"""Writing files so that a crash never leaves a half-written one behind."""

from __future__ import annotations

import errno
import glob
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

from cips3d.errors import ConfigError, UserError


def path_of(value: object, name: str = "path") -> Path:
    """`value` as a Path, or a `ConfigError` naming `name` when it is not a path (an int, a model)."""
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError(f"{name} must be a file or folder path, got {type(value).__name__}.")
    return Path(value)


def file_mode() -> int:
    """rw for everyone the umask allows, as `open()` would give (mkstemp alone gives 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def make_folder(folder: str | os.PathLike) -> Path:
    """`folder` and its parents, created where missing; a file in the way is one clear error."""
    folder = Path(folder)
    for part in (folder, *folder.parents):
        if part.exists() and not part.is_dir():
            raise UserError(f"{part} is a file, so the folder {folder} cannot be made.")
        if part.is_symlink() and not part.exists():  # mkdir said only "File exists"
            raise UserError(f"{part} is a link to {os.readlink(part)}, which does not exist, so the folder "
                            f"{folder} cannot be made.")  # fmt: skip
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a read-only parent, a full disk: said as what could not be made
        raise UserError(f"cannot make the folder {folder} ({err.strerror or err}).") from None
    return folder


def check_file_target(path: Path) -> None:
    """A `UserError` unless `path` is free or a regular file (or a link to one): the rename replaced a
    device, a pipe or a link to one with a plain file (`--out /dev/null` turned the device node into a
    JSON file), and a folder cannot be replaced at all."""
    if path.is_dir():
        raise UserError(f"{path} is a folder; a file path was expected there.")
    if os.path.lexists(path) and not path.is_file():
        dangling = path.is_symlink() and not path.exists()
        what = "a link to nothing" if dangling else "not a regular file (a device, a pipe, a socket?)"
        raise UserError(f"{path} is {what}; give the path of a file to write.")


def check_writable(path: str | os.PathLike) -> None:
    """A `UserError` now, before hours of work, when `path` cannot be written: not a regular file, or
    its folder (or the deepest one that exists, where it would be made) refuses a new file."""
    path = Path(path)
    check_file_target(path)
    folder = next(p for p in (path.parent, *path.parent.parents) if p.exists())
    if not folder.is_dir():
        raise UserError(f"{path} cannot be written: {folder} is a file, not a folder.")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=_temporary_prefix(path), suffix=TEMPORARY_SUFFIX)
    except OSError as err:
        raise UserError(
            f"{path} cannot be written: {folder} takes no new file ({err.strerror or err})."
        ) from None
    os.close(fd)
    os.unlink(probe)


TEMPORARY_SUFFIX = ".tmp"  # of atomic_write's files: hidden, beside their destination, until renamed


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


class LeftoverFilesWarning(UserWarning):
    """Temporary files of an earlier write that was killed before it could clean up."""


def warn_of_leftover_writes(path: str | os.PathLike) -> list[Path]:
    """The temporary files `atomic_write` left beside `path` when its process was killed mid-write (kill
    -9, the out-of-memory killer), with one warning naming them. They are not removed: another process
    may be writing there now, and only the user knows."""
    path = Path(path)
    found = sorted(path.parent.glob(f"{glob.escape(_temporary_prefix(path))}*{TEMPORARY_SUFFIX}"))
    if found:
        size = sum(p.stat().st_size for p in found) / 2**20
        warnings.warn(
            f"{len(found)} temporary file(s) of an interrupted write of {path.name} lie in {path.parent} "
            f"({size:,.0f} MiB, e.g. {found[0].name}); delete them if no other cips3d is writing there.",
            LeftoverFilesWarning,
            stacklevel=2,
        )
    return found


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call `write(tmp_path)`, fsync, then rename over `path` (same folder, so the rename is atomic).
    When the write fails, the folders made for it are removed again (if nothing else came into them)."""
    path = Path(path)
    check_file_target(path)
    made = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]  # deepest first
    make_folder(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=TEMPORARY_SUFFIX)
    except OSError as err:  # said of the folder, not of the temporary name
        raise OSError(err.errno, f"cannot write {path.name} there: {err.strerror}", str(path.parent)) from err
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException as err:
        said = _write_error(err, path, tmp)  # before the temporary file frees its room
        if os.path.exists(tmp):
            os.unlink(tmp)
        _remove_empty(made)
        if said is not None:
            raise said from err
        raise
    return path


FULL_DISK_BYTES = 1 << 20
"""Free space under which a failed write is taken for a full disk: safetensors and torch.save say
"No space left on device" in errors that are not OSErrors ("unexpected pos 238336 vs 238224")."""


def _write_error(err: BaseException, path: Path, tmp: str) -> OSError | None:
    """The OSError to raise for a failed write of `path`, naming `path` rather than the temporary file
    or nothing: a full disk whatever the writer's words for it, an OSError the writer raised without
    the destination's name; None to raise `err` as it is (a bug, an interruption)."""
    if isinstance(err, OSError) and err.filename in (None, tmp):
        return OSError(err.errno, err.strerror or str(err), str(path))
    if isinstance(err, (OSError, UserError)) or not isinstance(err, Exception):
        return None
    try:
        full = shutil.disk_usage(path.parent).free < FULL_DISK_BYTES
    except OSError:
        full = False
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) if full else None


def _remove_empty(folders: list[Path]) -> None:
    """Remove `folders` (deepest first) while they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (something else was written there), or gone
            return
