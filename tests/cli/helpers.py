"""Running `cips3d` commands in-process from the CLI tests."""

from __future__ import annotations

from cips3d.cli.main import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """`cips3d *argv` -> (exit code, stdout, stderr)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
