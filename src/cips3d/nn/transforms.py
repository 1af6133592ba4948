"""When our written-out gradients step aside: they are autograd Functions, differentiable once, written
for eager PyTorch. torch.func's transforms (grad, vmap, jacrev, hessian) need autograd's own formulas
for their higher derivatives, and torch.compile fuses the plain formulas itself (tracing a Function
would break its graph)."""

from __future__ import annotations

import torch


def plain_autograd_wanted(*tensors: torch.Tensor) -> bool:
    """Whether torch.compile is tracing, or a torch.func transform is tracing any of these tensors."""
    if torch.compiler.is_compiling():
        return True
    wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    return wrapped is not None and any(wrapped(t) for t in tensors)
