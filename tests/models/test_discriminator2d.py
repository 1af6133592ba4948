"""The 2D CIPS discriminator (StyleGAN2's residual discriminator): its parameter count, the minibatch
standard deviation's groups, and clear errors."""

from __future__ import annotations

import pytest
import torch

from cips3d.config_2d import Cips2DDiscriminatorConfig, cips2d_discriminator_preset
from cips3d.errors import ConfigError
from cips3d.models.discriminator2d import Discriminator2D, minibatch_stddev


def test_the_256_px_network_has_stylegan2s_parameter_count():
    """Counted by hand from StyleGAN2's layout (rosinality): 1x1 from-RGB 512; ResBlocks 128->256
    475,520, 256->512 1,901,312, four 512->512 4,981,760 each; final conv 2,364,416; linears 4,194,816
    and 513."""
    D = Discriminator2D(cips2d_discriminator_preset("cips-256"))
    assert sum(p.numel() for p in D.parameters()) == 28_864_129
    assert len(D.blocks) == 6  # 256 -> 4
    with_coords = Discriminator2D(Cips2DDiscriminatorConfig(input_channels=5))
    assert sum(p.numel() for p in with_coords.parameters()) == 28_864_129 + 2 * 128  # two more input maps


def test_the_stddev_channel_is_the_spread_within_each_strided_group():
    x = torch.randn(8, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    out = minibatch_stddev(x, group=4)
    assert out.shape == (8, 4, 2, 2) and torch.equal(out[:, :3], x)
    for b in range(8):  # with 8 samples in groups of 4, sample b is grouped with the samples b mod 2
        members = x[b % 2 :: 2]
        expected = torch.sqrt(members.var(0, unbiased=False) + 1e-8).mean()
        torch.testing.assert_close(out[b, 3], expected.expand(2, 2))


@torch.no_grad()
def test_a_logit_depends_on_its_group_only():
    D = Discriminator2D(cips2d_discriminator_preset("cips-tiny"), torch.Generator().manual_seed(0))
    images = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    logits = D(images)
    assert logits.shape == (8, 1)
    other_group, same_group = images.clone(), images.clone()
    other_group[1] = -other_group[1]  # sample 1 is in the odd samples' group
    same_group[2] = -same_group[2]  # sample 2 shares sample 0's group
    assert torch.equal(D(other_group)[0], logits[0])
    assert not torch.allclose(D(same_group)[0], logits[0])


def test_bad_inputs_and_configs_are_config_errors():
    D = Discriminator2D(cips2d_discriminator_preset("cips-tiny"))
    with pytest.raises(ConfigError, match=r"takes \[B, 3, 32, 32\]"):
        D(torch.zeros(2, 3, 16, 16))
    with pytest.raises(ConfigError, match="multiple of the minibatch-stddev group"):
        D(torch.zeros(6, 3, 32, 32))
    with pytest.raises(ConfigError, match="power of two from 8 to 1024"):
        Cips2DDiscriminatorConfig(size=48)
    with pytest.raises(ConfigError, match="unknown 2D CIPS discriminator preset"):
        cips2d_discriminator_preset("cips-512")
