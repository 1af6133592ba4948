"""The version floors that pyproject.toml admits are the ones `make test-oldest` runs the suite on."""

from __future__ import annotations

import re

from tests.conftest import REPO


def _makefile_value(name: str) -> str:
    found = re.search(rf"^{name} \??:?= (.+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert found, f"{name} is not set in the Makefile"
    return found.group(1)


def test_make_test_oldest_runs_the_oldest_python_and_torch_that_pyproject_admits():
    pyproject = (REPO / "pyproject.toml").read_text()  # no tomllib: the oldest Python (3.10) lacks it
    python_floor = re.search(r'^requires-python = ">=([\d.]+)"$', pyproject, re.MULTILINE).group(1)
    torch_floor = re.search(r'^    "torch>=([\d.]+)",$', pyproject, re.MULTILINE).group(1)
    assert _makefile_value("OLDEST_PYTHON") == f"python{python_floor}"
    oldest_torch = re.search(r"torch==(\d+\.\d+)\.\d+", _makefile_value("OLDEST_SPEC"))
    assert oldest_torch and oldest_torch.group(1) == torch_floor
    assert (
        f"Python {python_floor}, torch {oldest_torch.group(0).removeprefix('torch==')}"
        in (REPO / "README.md").read_text()
    )
