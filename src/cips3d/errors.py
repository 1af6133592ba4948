"""Errors a user can cause. The CLI prints their message as one sentence and exits with code 2."""


class UserError(Exception):
    """A problem with what the user asked for (a path, a value, a file), not a bug in cips3d."""


class ConfigError(UserError, ValueError):
    """A configuration value that cannot work (an impossible size, an unknown mode, mismatched widths)."""


class CheckpointError(UserError):
    """A weights file that is missing, unreadable, or does not fit the model it is loaded into."""
