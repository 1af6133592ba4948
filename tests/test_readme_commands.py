"""Every `cips3d` command line the README and the commands' own --help examples show parses as
written: no flag that does not exist, no required one left out, no value of the wrong kind."""

from __future__ import annotations

import argparse
import re
import shlex

import pytest

from cips3d.cli.main import build_parser, route
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def invocations(text: str) -> list[str]:
    """The arguments of each `cips3d ...` (or `... -m cips3d ...`) command in shell text: continued
    lines joined, `&&` chains split, comments dropped."""
    found = []
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        for part in re.split(r"&&", line):
            part = re.sub(r"\s+#.*$", "", part.strip())
            if part.startswith("cips3d "):
                found.append(part[len("cips3d ") :])
            elif "-m cips3d " in part:
                found.append(part.split("-m cips3d ", 1)[1])
    return found


def readme_invocations() -> list[str]:
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", README, flags=re.S)
    in_blocks = [line for block in blocks for line in invocations(block)]
    # Inline spans of four words or more are invocations; shorter ones name a command or a flag.
    inline = [span[len("cips3d ") :] for span in re.findall(r"`(cips3d [^`]+)`", README)]
    return in_blocks + [span for span in inline if len(span.split()) >= 3]


def help_invocations() -> list[str]:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [line for p in subparsers.choices.values() if p.epilog for line in invocations(p.epilog)]


@pytest.mark.parametrize("where, lines", [("README", readme_invocations()), ("--help", help_invocations())])
def test_every_shown_command_line_parses(where, lines, capsys):
    assert len(lines) >= 20  # the extraction found the examples
    parser = build_parser()
    wrong = []
    for line in lines:
        try:
            parser.parse_args(route(shlex.split(line)))
        except SystemExit:
            wrong.append(f"cips3d {line}: {capsys.readouterr().err.strip().splitlines()[-1]}")
    assert not wrong, f"{where}:\n" + "\n".join(wrong)
