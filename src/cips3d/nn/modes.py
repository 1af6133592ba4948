"""Switching modules into eval mode, or their weights out of autograd, for a while, and back however the
while ends."""

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


@contextmanager
def frozen_weights(model: nn.Module) -> Iterator[None]:
    """Inside: no gradients for the model's parameters (only what is optimised gets them); after: each
    parameter's own flag again."""
    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
