"""Ctrl-C and SIGTERM as a request to stop training cleanly, shared by the 3-D and 2D trainers.

The first signal sets a flag; the trainer finishes the iteration it is in (so that weights, optimisers,
random generators and counters stay one consistent state), writes a snapshot and returns. A second
Ctrl-C aborts at once with KeyboardInterrupt: snapshots are written to a temporary folder and renamed,
so an abort mid-write leaves the earlier ones intact and no half-written one.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequests:
    """Whether a stop was asked for (`requested`), by a signal while `installed` or by `request`."""

    def __init__(self) -> None:
        self.requested = False

    def request(self) -> None:
        """Ask for a stop after the current iteration (safe from a signal handler or another thread)."""
        self.requested = True

    @contextlib.contextmanager
    def installed(self, announce: bool = True) -> Iterator[None]:
        """SIGINT / SIGTERM handlers for the duration (main thread only: Python delivers signals there);
        the previous handlers come back afterwards, whatever happens. `announce`: say on stderr, at the
        first signal, what happens next (one process of several announces)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame) -> None:
            if self.requested and signum == signal.SIGINT:
                raise KeyboardInterrupt
            if announce and not self.requested:
                print("\ncips3d: stopping after this step, with a snapshot (Ctrl-C again stops at once).",
                      file=sys.stderr, flush=True)  # fmt: skip
            self.request()

        previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
