"""The fused Triton field kernel: equal to the PyTorch field (run in Triton's interpreter on the CPU),
used only without autograd, and refused with one clear sentence where it cannot run."""

from __future__ import annotations

import pytest

from cips3d import ConfigError
from tests.kernels.helpers import needs_triton, run_interpreted


@pytest.fixture(scope="module")
def interpreted():
    return run_interpreted("tests.kernels.interpret_field")


@needs_triton
@pytest.mark.parametrize("field", ["ffhq", "tiny", "one-layer", "three-layers"])
def test_the_kernel_equals_the_pytorch_field(interpreted, field):
    assert interpreted["interpreting"]
    errors = interpreted["fields"][field]
    assert errors["scale"] > 1  # features of a real size, not zeros
    assert errors["feature"] < 2e-5 and errors["sigma"] < 1e-5, errors


@needs_triton
def test_a_render_through_the_kernel_equals_the_pytorch_render(interpreted):
    r = interpreted["render"]
    for sampling in ("deterministic", "stochastic"):
        assert r[f"{sampling}_img"] < 1e-5 and r[f"{sampling}_aux"] < 1e-5, r
        assert r[f"{sampling}_depth"] < 1e-4, r
    assert r["calls_without_grad"] == 4  # two renders, coarse and fine pass, one chunk each


@needs_triton
def test_with_autograd_on_the_field_runs_in_pytorch(interpreted):
    r = interpreted["render"]
    assert r["calls_with_grad"] == 0 and r["with_grad_equal"]


@needs_triton
def test_widths_the_kernel_cannot_tile_are_refused():
    from cips3d.kernels.field_triton import check_shapes  # noqa: PLC0415 (imports triton)

    check_shapes(128, 32, 3)
    with pytest.raises(ConfigError, match="hidden 48"):
        check_shapes(48, 32, 3)
    with pytest.raises(ConfigError, match="feature 8"):
        check_shapes(64, 8, 3)


@needs_triton
def test_kernel_launch_constants_are_annotated_with_triton_s_own_object():
    """Triton 3.0's interpreter (the Triton of PyTorch 2.4) knows a launch constant only by a real
    `tl.constexpr` annotation; `from __future__ import annotations` turns them into text."""
    import inspect  # noqa: PLC0415

    import triton.language as tl  # noqa: PLC0415

    from cips3d.kernels import field_triton, inr_triton  # noqa: PLC0415

    for kernel in (field_triton._field_kernel, inr_triton._modulated_fc_kernel):
        annotations = [p.annotation for p in inspect.signature(kernel.fn).parameters.values()]
        assert tl.constexpr in annotations and all(not isinstance(a, str) for a in annotations)
