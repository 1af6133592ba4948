"""What the kernel tests share: the triton marker and running a script in Triton's interpreter."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The dev extra installs triton wherever PyPI has a wheel for it (Linux x86-64, CI included): there a
# missing triton fails these tests; elsewhere they are skipped.
needs_triton = pytest.mark.skipif(
    not (sys.platform == "linux" and platform.machine() == "x86_64")
    and importlib.util.find_spec("triton") is None,
    reason="no triton wheel for this platform",
)


def run_interpreted(module: str) -> dict:
    """The last stdout line (JSON) of `python -m module` run with TRITON_INTERPRET=1 in a fresh process
    (the variable must be set before triton is imported)."""
    env = dict(os.environ, TRITON_INTERPRET="1")
    command = [sys.executable, "-m", module]
    options = dict(capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    done = subprocess.run(command, check=False, **options)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])
