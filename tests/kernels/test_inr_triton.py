"""The fused INR layer kernel: equal to PyTorch's product, LeakyReLU and residual (run in Triton's
interpreter on the CPU), used only without autograd, and refused with one sentence where it cannot run."""

from __future__ import annotations

import pytest

from cips3d import ConfigError
from tests.kernels.helpers import needs_triton, run_interpreted

# Interpreter results are bfloat16 *truncated* (a GPU rounds to nearest): one bfloat16 step, 2^-7.
BF16_STEP = 2.0**-7


@pytest.fixture(scope="module")
def interpreted():
    return run_interpreted("tests.kernels.interpret_inr")


@needs_triton
@pytest.mark.parametrize("layer", ["ffhq-first", "ffhq", "tiny-first", "tiny"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_layer_equals_product_activation_and_residual(interpreted, layer, dtype):
    assert interpreted["interpreting"]
    errors = interpreted["layers"][f"{layer} {dtype}"]
    assert errors["dtype"] == dtype  # the result keeps the operands' type
    tolerance = 1e-6 if dtype == "float32" else BF16_STEP
    assert errors["plain"] < tolerance and errors["residual"] < tolerance, errors


@needs_triton
def test_a_render_through_the_kernel_equals_the_pytorch_decoder(interpreted):
    r = interpreted["render"]
    assert r["float32_img"] < 1e-5, r
    assert r["bf16_img"] < 1e-2, r  # bfloat16 rounds once per layer here, three times in PyTorch
    assert r["float32_calls"] == r["bf16_calls"] == 18  # nine blocks of two layers, one chunk


@needs_triton
def test_with_autograd_on_the_decoder_runs_in_pytorch(interpreted):
    r = interpreted["render"]
    assert r["calls_with_grad"] == 0 and r["with_grad_equal"]


@needs_triton
def test_widths_the_kernel_cannot_tile_are_refused():
    from cips3d.kernels.inr_triton import check_shapes  # noqa: PLC0415 (imports triton)

    check_shapes(32, 512)
    check_shapes(16, 64)
    with pytest.raises(ConfigError, match="this layer is 48 -> 512"):
        check_shapes(48, 512)
    with pytest.raises(ConfigError, match="this layer is 512 -> 320"):
        check_shapes(512, 320)
