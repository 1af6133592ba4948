"""Entry point of the `cips3d` command."""

from __future__ import annotations

import argparse
import sys

from cips3d import __version__
from cips3d.cli import convert, dataset, sample, train
from cips3d.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cips3d",
        description="CIPS-3D, the 3D-aware GAN: sample, train, build datasets, convert weights.",
    )
    parser.add_argument("--version", action="version", version=f"cips3d {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in (sample, train, dataset, convert):
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; user mistakes end as one sentence on stderr and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except UserError as err:
        print(f"cips3d {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a folder we cannot write, a full disk
        where = f" ({err.filename})" if err.filename else ""
        print(f"cips3d {args.command}: error: {err.strerror or err}{where}.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cips3d {args.command}: interrupted; files already written are complete.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
