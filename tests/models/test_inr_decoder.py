"""The INR decoder's blocks and to-RGB heads."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from cips3d.models.inr_decoder import RGB_PADDED_WIDTH, InrBlock, _padded_head
from cips3d.nn.init import empty_linear


def test_a_padded_rgb_head_computes_what_the_head_does():
    """The GPU's bfloat16 path pads each 3-wide head to 8 outputs: the first 3 are the head's own."""
    head = empty_linear(64, 3)
    torch.nn.init.normal_(head.weight, generator=torch.Generator().manual_seed(0))
    torch.nn.init.normal_(head.bias, generator=torch.Generator().manual_seed(1))
    x = torch.randn(2, 10, 64, generator=torch.Generator().manual_seed(2))
    out = _padded_head(head, x)
    assert RGB_PADDED_WIDTH % 8 == 0 and out.shape == (2, 10, 3)
    torch.testing.assert_close(out, head(x), rtol=1e-5, atol=1e-5)  # another product kernel


@pytest.mark.parametrize("residual", [True, False])
def test_a_block_with_in_place_activations_has_the_gradient_of_its_formula(residual):
    """The block's LeakyReLUs run in place also when training: its output and gradients are those of
    lrelu(lrelu(x @ W1) @ W2) (+ x) written out of place."""
    g = torch.Generator().manual_seed(3)
    block = InrBlock(6, 6, 4, residual=residual).double()
    x, w1, w2 = (
        torch.randn(*shape, generator=g, dtype=torch.float64) for shape in ((2, 5, 6), (2, 6, 6), (2, 6, 6))
    )
    inputs = [t.requires_grad_() for t in (x, w1, w2)]
    upstream = torch.randn(2, 5, 6, generator=g, dtype=torch.float64)

    def formula(x, w1, w2):
        y = F.leaky_relu(F.leaky_relu(x @ w1, 0.2) @ w2, 0.2)
        return y + x if residual else y

    ours, plain = block(*inputs), formula(*inputs)
    assert torch.equal(ours, plain)
    ours_grads = torch.autograd.grad(ours, inputs, upstream)
    plain_grads = torch.autograd.grad(plain, inputs, upstream)
    for a, b in zip(ours_grads, plain_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # inference: the residual is added in place, the same numbers
        assert torch.equal(block(x, w1, w2), plain)
