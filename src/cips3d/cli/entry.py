"""The `cips3d` command's first step: a Ctrl-C while torch and the commands are still being imported (a
few seconds on a cold start) ends in one sentence, as it does once a command runs."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def _stop_while_starting(signum, frame) -> None:
    """SIGINT during the imports: nothing has been written yet, so stop at once. Raising
    KeyboardInterrupt there instead can leave a library half imported (numpy then recurses) and print a
    traceback."""
    sys.stderr.write("cips3d: interrupted while starting; nothing was done.\n")
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


def main() -> int:
    """Import the command line under `_stop_while_starting`, then run it with Python's own Ctrl-C."""
    in_main_thread = threading.current_thread() is threading.main_thread()  # where signals can be set
    previous = signal.signal(signal.SIGINT, _stop_while_starting) if in_main_thread else None
    try:
        command_line = importlib.import_module("cips3d.cli.main")
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous)
    return command_line.main()
