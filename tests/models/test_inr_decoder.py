"""The INR decoder's to-RGB heads."""

from __future__ import annotations

import torch

from cips3d.models.inr_decoder import RGB_PADDED_WIDTH, _padded_head
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
