"""One training process per run folder: the lock file refuses a second one in one sentence."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from cips3d.errors import UserError
from cips3d.training.run_lock import LOCK_FILE, run_lock


def test_a_second_holder_is_refused_naming_the_first_and_the_lock_goes_with_it(tmp_path):
    run = tmp_path / "run"
    with run_lock(run):
        assert f"pid {os.getpid()} on " in (run / LOCK_FILE).read_text()
        with pytest.raises(
            UserError, match=rf"run is being trained by another process \(pid {os.getpid()} on "
        ):
            with run_lock(run):
                pass  # a second open of the file is a second holder, even in this process
    with run_lock(run):  # released when the first run returns
        pass


def test_a_lock_held_by_another_process_refuses_a_run_and_a_killed_holder_leaves_none(tmp_path):
    run = tmp_path / "run"
    holder = textwrap.dedent(f"""
        import sys, time
        from cips3d.training.run_lock import run_lock
        with run_lock({str(run)!r}):
            print("held", flush=True)
            time.sleep(60)
    """)
    process = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=f"pid {process.pid} on .*pick another --outdir"):
            with run_lock(run):
                pass
    finally:
        process.kill()
        process.wait()
    with run_lock(run):  # SIGKILL leaves the file, never the lock
        pass
