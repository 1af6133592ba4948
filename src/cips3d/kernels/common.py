"""What the Triton kernels share: where they may run, and the widths their tiles accept."""

from __future__ import annotations

import torch
import triton

from cips3d.errors import ConfigError


@triton.jit
def _probe():
    pass


def interpreting() -> bool:
    """Whether Triton was imported in interpreter mode (TRITON_INTERPRET=1): kernels then run on NumPy.

    Read from how `triton.jit` wrapped a kernel at import, since that, not the variable's value now,
    decides how every kernel of this process runs."""
    return type(_probe).__name__ == "InterpretedFunction"


def power_of_two(n: int) -> bool:
    """Whether n is a power of two that a tensor-core tile can take (16 or more)."""
    return n >= 16 and n & (n - 1) == 0


def require_gpu(tensor: torch.Tensor, option: str) -> None:
    """Raise ConfigError unless `tensor` is on a CUDA GPU or Triton is interpreting."""
    if tensor.device.type != "cuda" and not interpreting():
        raise ConfigError(
            f"{option} needs a CUDA GPU (on a CPU it runs only in Triton's interpreter, "
            "TRITON_INTERPRET=1, which the tests use)."
        )
