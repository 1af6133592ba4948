"""Switching modules into eval mode for a while, and back however the while ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def evaluating(*modules: nn.Module) -> Iterator[None]:
    """Each of `modules` in eval mode inside the block and back in its own mode after it, an exception
    included (a metric that refused its arguments left a training model in eval mode)."""
    modes = [module.training for module in modules]
    try:
        for module in modules:
            module.eval()
        yield
    finally:
        for module, mode in zip(modules, modes, strict=True):
            module.train(mode)
