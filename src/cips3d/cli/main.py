"""Entry point of the `cips3d` command."""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings

import torch

from cips3d import __version__
from cips3d.cli import (
    blend,
    convert,
    dataset,
    demo,
    info,
    invert,
    invert2d,
    mesh,
    metrics,
    multiview,
    sample,
    sample2d,
    train,
    train2d,
    video,
    view,
)
from cips3d.cli.common import check_seed_arguments, given_options, refuse_empty_values
from cips3d.cli.entry import EXIT_INTERRUPTED
from cips3d.errors import SaidElsewhere, UserError


class OneSentenceParser(argparse.ArgumentParser):
    """argparse, but a mistake on the command line ends in one sentence and where to look, not the
    usage block (which for most commands is longer than the screen and hides the sentence); sub-commands
    inherit the class through `add_subparsers`."""

    def error(self, message: str):
        ending = "" if message.endswith((".", "?", "!")) else "."
        self.exit(2, f"{self.prog}: error: {message}{ending} See `{self.prog} --help`.\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneSentenceParser(
        prog="cips3d",
        description="CIPS-3D, the 3D-aware GAN: sample, train, build datasets, convert weights.",
    )
    parser.add_argument("--version", action="version", version=f"cips3d {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in (
        demo,
        sample,
        train,
        dataset,
        convert,
        video,
        view,
        metrics,
        mesh,
        blend,
        multiview,
        invert,
        train2d,
        sample2d,
        invert2d,
        info,
    ):
        command.add_parser(subparsers)
    dataset.add_synth_parser(subparsers)
    dataset.add_lfw_parser(subparsers)
    dataset.add_panorama_parser(subparsers)
    # Listed under `dataset` in the help instead of as commands of their own.
    subparsers._choices_actions = [a for a in subparsers._choices_actions if a.dest not in NESTED.values()]
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def public_commands(parser: argparse.ArgumentParser) -> list[str]:
    """The commands `cips3d --help` lists (the hidden two-word ones are reached through `route`)."""
    return [a.dest for a in _subparsers(parser)._choices_actions]


# Two-word commands, parsed by their own (hidden) subparsers so that `cips3d dataset SOURCE DEST` stays.
NESTED = {
    ("dataset", "synth"): "dataset-synth",
    ("dataset", "lfw"): "dataset-lfw",
    ("dataset", "panorama"): "dataset-panorama",
}


def route(argv: list[str]) -> list[str]:
    """['dataset', 'synth', ...] -> ['dataset-synth', ...]; anything else unchanged."""
    if len(argv) >= 2 and (argv[0], argv[1]) in NESTED:
        return [NESTED[(argv[0], argv[1])], *argv[2:]]
    return argv


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; user mistakes end as one sentence on stderr and exit code 2."""
    parser = build_parser()
    argv = route(list(sys.argv[1:] if argv is None else argv))
    public = public_commands(parser)
    if not argv:
        parser.error(f"give a command; the commands are {', '.join(public)}.")
    if not argv[0].startswith("-") and argv[0] not in [*public, *NESTED.values()]:
        parser.error(f"unknown command {argv[0]!r}; the commands are {', '.join(public)}.")
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the command's own parser, so that the sentence names the command
        _subparsers(parser).choices[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    args.command_line = argv  # what the outputs' records give as the command that made them
    previous, warnings.formatwarning = warnings.formatwarning, _format_warning
    try:
        command_parser = _subparsers(parser).choices[args.command]
        args.given = given_options(command_parser, argv[1:])  # `given`: typed, at its default or not
        refuse_empty_values(command_parser, args)
        check_seed_arguments(args)
        return args.run(args)
    except SaidElsewhere:  # another process of the training job says it, once for the job
        return 2
    except UserError as err:
        print(f"cips3d {args.command.replace('-', ' ')}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `cips3d info run | head -3`: the reader stopped reading, which is no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nor is the flush at exit
        return 0
    except OSError as err:  # a folder we cannot write, a full disk
        where = f" ({err.filename})" if err.filename else ""
        print(
            f"cips3d {args.command.replace('-', ' ')}: error: {err.strerror or err}{where}.", file=sys.stderr
        )
        return 2
    except KeyboardInterrupt:
        print(
            f"cips3d {args.command.replace('-', ' ')}: interrupted; files already written are complete.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except (RuntimeError, MemoryError) as err:  # torch.OutOfMemoryError is a RuntimeError
        message = out_of_memory_message(err)
        if message is None:
            raise
        print(f"cips3d {args.command.replace('-', ' ')}: error: {message}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = previous


_python_format_warning = warnings.formatwarning


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """cips3d's own warnings (such as skipped images) as one line for the user, without the source line
    Python shows; everyone else's as Python formats them."""
    if category.__module__.startswith("cips3d."):
        return f"cips3d: warning: {message}\n"
    return _python_format_warning(message, category, filename, lineno, line)


_ALLOCATION = re.compile(r"tried to allocate ([0-9.]+) ?(bytes|[KMGT]iB)", re.IGNORECASE)
_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def out_of_memory_message(err: RuntimeError | MemoryError) -> str | None:
    """One sentence for PyTorch's CPU and CUDA out-of-memory errors and Python's MemoryError (None for any
    other error): a size, batch or chunk too large for this machine is the user's choice, not a bug."""
    text = str(err)
    known = isinstance(err, (torch.OutOfMemoryError, MemoryError)) or "can't allocate memory" in text
    if not known:
        return None
    where = "GPU" if isinstance(err, torch.OutOfMemoryError) else "machine"
    match = _ALLOCATION.search(text)
    size = f" ({float(match.group(1)) * _UNITS[match.group(2)] / 2**30:,.1f} GiB at once)" if match else ""
    return f"out of memory: the {where} could not hold what was asked{size}; ask for a smaller size or batch."


if __name__ == "__main__":
    sys.exit(main())
