"""Checks of the values callers hand the generators (their shapes and types are checked by each model)."""

from __future__ import annotations

import torch

from cips3d.errors import ConfigError


def refuse_non_finite(x: torch.Tensor, name: str) -> None:
    """A `ConfigError` when `x` holds NaN or infinity, which would render as NaN images with no word of
    why. Only tensors in host memory are read: reading a GPU tensor would wait for the device."""
    if x.device.type == "cpu" and not bool(torch.isfinite(x).all()):
        raise ConfigError(f"{name} holds NaN or infinite values; give finite numbers.")


def refuse_other_device(x: torch.Tensor, device: torch.device, name: str) -> None:
    """A `ConfigError` when `x` lies on another device than the model (`device`): torch said so from
    deep inside a product, naming neither the tensor nor the fix."""
    if x.device != device:
        raise ConfigError(f"{name} is on {x.device} but the model is on {device}; move it with "
                          f".to({str(device)!r}) (or the model with .to({str(x.device)!r})).")  # fmt: skip


def require_tensor(x: object, name: str) -> torch.Tensor:
    """`x`, or a `ConfigError` naming `name` when it is not a tensor (a numpy array has no `.dim()`)."""
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    return x
