"""The command's start: `import cips3d` waits for nothing heavy, a Ctrl-C while the command is still
being imported is one sentence and exit code 130, and the public names load on first use."""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib.metadata import entry_points

import cips3d


def test_importing_the_package_leaves_torch_for_later():
    code = "import sys, cips3d; print('torch' in sys.modules, cips3d.__version__)"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert shown.split() == ["False", cips3d.__version__]


def test_ctrl_c_while_starting_is_one_sentence_and_exit_130():
    # A real SIGINT arrives in the middle of the imports (the import is made to wait for it).
    program = """
import os, signal, time
from cips3d.cli import entry
def slow_import(name):
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(60)
entry.importlib.import_module = slow_import
entry.main()
"""
    command = [sys.executable, "-c", program]
    done = subprocess.run(command, capture_output=True, text=True, timeout=50, check=False)
    assert done.returncode == 130 and done.stdout == ""
    assert done.stderr == "cips3d: interrupted while starting; nothing was done.\n"


def test_ctrl_c_once_the_command_runs_is_pythons_again():
    program = """
import signal
from cips3d.cli import entry
class CommandLine:
    def main(self):
        return 0 if signal.getsignal(signal.SIGINT) is signal.default_int_handler else 1
entry.importlib.import_module = lambda name: CommandLine()
raise SystemExit(entry.main())
"""
    assert subprocess.run([sys.executable, "-c", program], timeout=50, check=True).returncode == 0


def test_the_installed_command_and_python_m_start_through_the_entry():
    (script,) = entry_points(group="console_scripts", name="cips3d")
    assert script.value == "cips3d.cli.entry:main"
    version = [sys.executable, "-m", "cips3d", "--version"]
    shown = subprocess.run(version, capture_output=True, text=True, check=True).stdout
    assert shown.strip() == f"cips3d {cips3d.__version__}"


def test_every_public_name_loads_from_where_it_lives():
    assert sorted(cips3d.__all__) == sorted(cips3d._MODULE_OF)
    for name in cips3d.__all__:
        module = importlib.import_module(cips3d._MODULE_OF[name])
        assert getattr(cips3d, name) is getattr(module, name)
    assert set(cips3d.__all__) <= set(dir(cips3d))
    try:
        cips3d.NoSuchThing  # noqa: B018
    except AttributeError as err:
        assert "has no attribute 'NoSuchThing'" in str(err)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


def test_every_name_the_package_docstring_lists_is_public():
    listing = cips3d.__doc__.split("Public API:")[1]
    names = {
        n.strip() for line in listing.strip().splitlines() for n in line.strip().split("  ")[0].split(",")
    }
    assert {"load_generator", "save_generator", "Camera"} <= names
    assert names == set(cips3d.__all__)
