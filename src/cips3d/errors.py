"""Errors a user can cause. The CLI prints their message as one sentence and exits with code 2."""


class UserError(Exception):
    """A problem with what the user asked for (a path, a value, a file), not a bug in cips3d."""


class ConfigError(UserError, ValueError):
    """A configuration value that cannot work (an impossible size, an unknown mode, mismatched widths)."""


class CheckpointError(UserError):
    """A weights file that is missing, unreadable, or does not fit the model it is loaded into."""


def first_line(error: BaseException, limit: int | None = None) -> str:
    """The first line of `error`'s message (its type's name when the message is empty), cut to `limit`
    characters: enough to say why something failed inside one sentence."""
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:limit]
