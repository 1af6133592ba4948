"""Errors a user can cause. The CLI prints their message as one sentence and exits with code 2."""

import re


class UserError(Exception):
    """A problem with what the user asked for (a path, a value, a file), not a bug in cips3d."""


class SaidElsewhere(UserError):
    """A failure another process of a training job reports for the whole job (rank 0 says it once); this
    process exits with code 2 and prints nothing."""


class ConfigError(UserError, ValueError):
    """A configuration value that cannot work (an impossible size, an unknown mode, mismatched widths)."""


class CheckpointError(UserError):
    """A weights file that is missing, unreadable, or does not fit the model it is loaded into."""


def first_sentence(error: BaseException, limit: int = 200) -> str:
    """The first sentence of `error`'s first line, without its full stop, cut to `limit` characters: a
    library's verbose error (PyTorch's "... not a ZIP archive. This is an internal miniz error. If you
    are seeing this ...") inside one of ours without its paragraph of advice."""
    return re.split(r"(?<=[a-z0-9)])\.\s+(?=[A-Z])", first_line(error))[0].removesuffix(".")[:limit]


def error_gist(error: BaseException, limit: int = 200) -> str:
    """'Type: first sentence' of `error` (only its type's name when it has no message), cut to `limit`."""
    if not str(error).strip():
        return type(error).__name__
    return f"{type(error).__name__}: {first_sentence(error)}"[:limit]


def first_line(error: BaseException, limit: int | None = None) -> str:
    """The first line of `error`'s message (its type's name when the message is empty), cut to `limit`
    characters: enough to say why something failed inside one sentence."""
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:limit]
