"""The official 2D CIPS discriminator (StyleGAN2's, as CIPS trains it) in our `Discriminator2D`: the
converted model gives the logits of an independent official-form forward pass (`cips_official`)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from cips3d.config_2d import Cips2DDiscriminatorConfig
from cips3d.convert.official_d2d import d_config_from_official_2d, d_key_table_2d, to_official_d2d
from cips3d.errors import CheckpointError
from cips3d.io.checkpoint2d import discriminator2d_from_official
from cips3d.models.discriminator2d import Discriminator2D
from tests.convert.cips_official import D_SIZE, official_d_forward, official_d_state


@pytest.mark.parametrize("channels", [3, 5])
def test_converted_discriminator_gives_the_official_logits(channels):
    state = official_d_state(input_channels=channels)
    D = discriminator2d_from_official(state)
    assert (D.config.size, D.config.input_channels) == (D_SIZE, channels)
    images = torch.randn(8, channels, D_SIZE, D_SIZE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(D(images), official_d_forward(state, images), atol=1e-4, rtol=1e-5)
    back = to_official_d2d(D.state_dict(), D.config)
    assert list(back) == list(state) and all(torch.equal(back[k], v) for k, v in state.items())


def test_the_config_is_read_from_the_shapes_of_a_256_px_discriminator():
    """CIPS at 256 px, channel multiplier 2 (spec 8.2): the key table's shapes give back the config."""
    config = Cips2DDiscriminatorConfig(size=256, channel_multiplier=2, input_channels=3)
    with torch.device("meta"):
        ours = Discriminator2D(config).state_dict()
    official = {row.official: ours[row.ours] for row in d_key_table_2d(config)}
    assert d_config_from_official_2d(official) == config
    assert official["convs.0.0.weight"].shape == (128, 3, 1, 1) and "convs.6.conv1.0.weight" in official
    assert sum(t.numel() for t in official.values() if t.dim() != 2 or t.shape != (4, 4)) == 28_864_129


@pytest.mark.parametrize(
    "config",
    [
        Cips2DDiscriminatorConfig(size=32, max_channels=64),  # cips-tiny's: its widths were read as 512
        Cips2DDiscriminatorConfig(size=128, channel_multiplier=1, input_channels=5, max_channels=256),
        Cips2DDiscriminatorConfig(size=128, channel_multiplier=1, max_channels=128),  # every width capped
        Cips2DDiscriminatorConfig(size=16),
    ],
    ids=["capped-64", "mult-1", "all-capped", "16px"],
)
def test_a_width_cap_and_multiplier_are_read_back_from_the_shapes(config):
    """The config read from an official state dict builds the same shapes (where the shapes cannot
    tell the multiplier, every width being capped, StyleGAN2's 2 is taken)."""
    with torch.device("meta"):
        ours = Discriminator2D(config).state_dict()
        official = {row.official: ours[row.ours] for row in d_key_table_2d(config)}
        read = d_config_from_official_2d(official)
        again = Discriminator2D(read).state_dict()
    assert {k: v.shape for k, v in again.items()} == {k: v.shape for k, v in ours.items()}
    every_width_capped = all(config.channels(r) == config.max_channels for r in (4, config.size))
    assert read == (replace(config, channel_multiplier=2) if every_width_capped else config)


def test_discriminators_of_another_kind_are_refused_by_name():
    state = official_d_state()
    state["convs.1.0.weight"] = torch.ones(1)
    with pytest.raises(CheckpointError, match="n_first_layers"):
        discriminator2d_from_official(state)
    state = official_d_state()
    del state["final_conv.1.bias"]
    with pytest.raises(CheckpointError, match=r"missing 1 key \(final_conv\.1\.bias\)"):
        discriminator2d_from_official(state)
