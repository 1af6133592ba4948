"""Which device a name means, and whether this machine has it: one sentence instead of PyTorch's
"Torch not compiled with CUDA enabled" assertion deep inside a `.to()`."""

from __future__ import annotations

import torch

from cips3d.errors import ConfigError


def usable_device(name: str | torch.device) -> torch.device:
    """'auto' (cuda when available, else cpu), cpu, cuda, cuda:N or mps as a `torch.device`; a
    `ConfigError` for an unknown name or a device this machine lacks."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {str(name)!r}; use cpu, cuda, cuda:N, mps or auto.")
    if device.type in ("cpu", "mps") and device.index not in (None, 0):  # PyTorch ignores the index
        raise ConfigError(f"device {str(name)!r}: {device.type} has no numbered devices; use {device.type}.")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(name)!r} was asked for but PyTorch sees no CUDA GPU here.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(
            f"device {str(name)!r} was asked for but PyTorch sees {torch.cuda.device_count()} GPU(s)."
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {str(name)!r} was asked for but MPS is not available here.")
    return device
