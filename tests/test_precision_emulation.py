"""The CPU emulation of tensor-core rounding (benchmarks/precision_emulation.py) rounds as they do."""

from __future__ import annotations

import importlib.util
import sys

import torch

from tests.conftest import REPO

SCRIPT = REPO / "benchmarks" / "precision_emulation.py"
spec = importlib.util.spec_from_file_location("precision_emulation", SCRIPT)
emulation = importlib.util.module_from_spec(spec)
sys.modules["precision_emulation"] = emulation
spec.loader.exec_module(emulation)


def _values() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100_000, generator=g) * torch.logspace(-6, 6, 100_000)
    return torch.cat([x, torch.tensor([0.0, -0.0, 1.0, 1.00390625, 1.01171875])])  # ties of bf16 included


def test_seven_bits_is_exactly_pytorchs_bfloat16_rounding():
    x = _values()
    assert torch.equal(emulation.round_mantissa(x, 7), x.to(torch.bfloat16).float())


def test_ten_bits_rounds_to_nearest_within_half_a_tf32_step():
    x = _values()
    rounded = emulation.round_mantissa(x, 10)
    assert torch.equal(emulation.round_mantissa(rounded, 10), rounded)  # already representable
    assert torch.equal(
        rounded.view(torch.int32) & ((1 << 13) - 1), torch.zeros_like(rounded, dtype=torch.int32)
    )
    relative = ((rounded - x).abs() / x.abs().clamp_min(1e-30))[x != 0]
    assert relative.max() <= 2.0**-11


def test_products_inside_the_mode_see_rounded_operands_but_not_the_bias():
    off = 1.0 + 2.0**-12  # between two TF32 values: rounds to 1
    a, b, bias = torch.full((1, 2, 2), off), torch.eye(2).unsqueeze(0), torch.full((1, 1, 2), off)
    with emulation.RoundedProducts(10):
        out = torch.baddbmm(bias, a, b)
    assert torch.equal(out, torch.full((1, 2, 2), 1.0 + off))  # a rounded to 1, the bias kept whole
    assert torch.equal(torch.baddbmm(bias, a, b), torch.full((1, 2, 2), 2 * off))  # outside: float32
