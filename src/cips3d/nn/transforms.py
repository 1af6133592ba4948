"""When our written-out gradients step aside: they are autograd Functions, differentiable once, written
for eager PyTorch. torch.func's transforms (grad, vmap, jacrev, hessian) need autograd's own formulas
for their higher derivatives, and torch.compile fuses the plain formulas itself (tracing a Function
would break its graph)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.autograd import forward_ad
from torch.nn.modules import module as module_hooks

_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def plain_autograd_wanted(*tensors: torch.Tensor) -> bool:
    """Whether torch.compile is tracing, or a torch.func transform is active or tracing any of these
    tensors."""
    if torch.compiler.is_compiling():
        return True
    # Any active transform refuses a Function without its own vmap rule, wrapped inputs or not; those
    # with one (the demodulation) step aside as well: their gradients are differentiable once.
    active = getattr(torch._C, "_are_functorch_transforms_active", None)
    if active is not None and active():
        return True
    wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    return wrapped is not None and any(wrapped(t) for t in tensors)


def plain_graph_wanted(
    tensors: Iterable[torch.Tensor], modules: Iterable[nn.Module], saved: bool = True
) -> bool:
    """Whether a written-out pass (a gradient, or blocks of rows) must step aside for the plain layers:
    under torch.func, torch.compile or forward-mode AD, under CPU autocast (whose dtypes it would not
    keep), for inference-mode tensors when it `saved` them for a backward (a function cannot), or when
    module hooks (global ones, or those of `modules`, which it would not call) must see the layers run."""
    tensors = list(tensors)
    if plain_autograd_wanted(*tensors) or torch.is_autocast_enabled("cpu"):
        return True
    if any((saved and t.is_inference()) or forward_ad.unpack_dual(t).tangent is not None for t in tensors):
        return True
    # PyTorch has no public way to ask for the global hooks: its module keeps them in these dicts.
    if any(getattr(module_hooks, f"_global{name}", None) for name in _HOOKS):
        return True
    return any(getattr(m, name) for module in modules for m in module.modules() for name in _HOOKS)


def batched_gradients(*grads: torch.Tensor | None) -> bool:
    """Whether autograd runs a backward over a batch of gradients (`is_grads_batched`, vmap)."""
    functorch = torch._C._functorch
    return any(
        g is not None and (functorch.is_batchedtensor(g) or functorch.is_legacy_batchedtensor(g))
        for g in grads
    )


def graph_gradients(
    outputs: list[torch.Tensor],
    upstream: list[torch.Tensor],
    inputs: tuple[torch.Tensor, ...],
    needed: tuple[bool, ...],
) -> list[torch.Tensor | None]:
    """The gradients of `inputs` (None where not `needed`) through autograd's own graph of `outputs`,
    given their upstream gradients: a written-out backward's fallback, itself differentiable when the
    backward builds a graph (grad mode on, as `create_graph=True` leaves it)."""
    wanted = [i for i, need in enumerate(needed) if need]
    found = torch.autograd.grad(
        outputs,
        [inputs[i] for i in wanted],
        upstream,
        create_graph=torch.is_grad_enabled(),
        allow_unused=True,
    )
    grads: list[torch.Tensor | None] = [None] * len(inputs)
    for i, g in zip(wanted, found, strict=True):
        grads[i] = g
    return grads
