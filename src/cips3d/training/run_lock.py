"""One training process per run folder: a lock file held while a run trains.

Two processes training into one folder (a re-queued cluster job while the old one still runs, a command
started twice) deleted each other's temporary snapshot folders and wrote one run's seed into the other's
run.json. The main process of a run holds an exclusive `flock` on `<run>/.lock` from before it writes
anything until it returns; a second one is refused in one sentence naming the holder. The lock goes with
the process (a killed run leaves a file, never a lock). Where the file system has no locks (some network
mounts) or the platform has no `fcntl`, runs go unguarded as before.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from cips3d.errors import UserError
from cips3d.io.files import make_folder

try:
    import fcntl
except ImportError:  # Windows: no advisory locks of this kind
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike) -> Iterator[None]:
    """Hold the run folder's lock (creating the folder) for the body; a `UserError` when another process
    holds it."""
    new = not Path(run_dir).exists()
    folder = make_folder(run_dir)  # a file in the way is one clear error
    try:
        with open(folder / LOCK_FILE, "a+", encoding="utf-8") as handle:
            if not _locked(handle, folder):
                yield
                return
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
            handle.flush()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    except BaseException:
        if new:  # a run refused before it wrote anything leaves no folder behind
            _remove_if_only_the_lock(folder)
        raise


def _remove_if_only_the_lock(folder: Path) -> None:
    """Remove `folder` when it holds nothing but the lock file (what a run made and then refused)."""
    if [p.name for p in folder.iterdir()] == [LOCK_FILE]:
        (folder / LOCK_FILE).unlink()
        folder.rmdir()


def _locked(handle, folder: Path) -> bool:
    """Take the lock: True when held, False when locks are not available here; a `UserError` when
    another process holds it."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        raise UserError(
            f"{folder} is being trained by another process ({holder}); two runs in one folder overwrite "
            "each other's snapshots: wait for it to end, stop it, or pick another --outdir."
        ) from None
    except OSError:  # a file system without locks
        return False
    return True


class RunFolderLock:
    """`run_lock` of one trainer's run folder, re-entrant, and taken by the main process only: a command
    takes it before a job's processes agree to start (so a folder in use is said once, by rank 0, before
    any other process has begun) and the trainer's `run` inside it takes no second one."""

    def __init__(self, run_dir: str | os.PathLike, main: bool) -> None:
        self._run_dir, self._main, self._depth = run_dir, main, 0
        self._held: contextlib.ExitStack | None = None

    def __enter__(self) -> RunFolderLock:
        if self._depth == 0 and self._main:
            stack = contextlib.ExitStack()
            stack.enter_context(run_lock(self._run_dir))
            self._held = stack
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0 and self._held is not None:
            held, self._held = self._held, None
            held.__exit__(*exc)
