"""The key table against the official FFHQ key list, round trips, and mismatch messages."""

from __future__ import annotations

import pytest
import torch

from cips3d import CheckpointError, Generator3D, generator_preset
from cips3d.convert.official import from_official, key_table, to_official
from tests.conftest import load_fixture, official_key_list


def test_ffhq_converts_to_exactly_the_official_names_and_shapes():
    G = Generator3D(generator_preset("ffhq"), initialize=False)
    official = to_official(G.state_dict(), G.config)
    expected = official_key_list("official", "full_ffhq_state_dict_keys.txt")
    assert len(expected) == 172
    assert [(k, tuple(v.shape)) for k, v in official.items()] == expected
    assert sum(v.numel() for v in official.values()) == 11_287_743


def test_every_parameter_has_exactly_one_row():
    G = Generator3D(generator_preset("tiny"), initialize=False)
    ours = [row.ours for row in key_table(G.config)]
    assert len(ours) == len(set(ours))
    assert set(ours) == set(G.state_dict()) - {"truncation_mean_nerf", "truncation_mean_inr"}


def test_official_round_trip_is_exact(small_config):
    official = load_fixture("official", "small_G_state_dict.pt")
    G = Generator3D(small_config, initialize=False)
    ours = from_official(official, small_config, G.state_dict())
    back = to_official(ours, small_config)
    assert list(back) == list(official)
    assert all(torch.equal(back[k], official[k]) for k in official)


def test_a_mismatch_names_missing_unexpected_and_misshapen_keys(small_config):
    official = dict(load_fixture("official", "small_G_state_dict.pt"))
    del official["siren.final_layer.bias"]
    official["extra.weight"] = torch.zeros(1)
    official["aux_to_rbg.0.weight"] = torch.zeros(3, 9)
    G = Generator3D(small_config, initialize=False)
    with pytest.raises(CheckpointError) as err:
        from_official(official, small_config, G.state_dict())
    message = str(err.value)
    assert "siren.final_layer.bias" in message and "extra.weight" in message
    assert "aux_to_rbg.0.weight (3, 9) (expected (3, 8))" in message
    assert message.count("\n") == 0


def test_weights_of_another_size_do_not_load_into_the_ffhq_preset(small_config):
    official = load_fixture("official", "small_G_state_dict.pt")
    G = Generator3D(generator_preset("ffhq"), initialize=False)
    with pytest.raises(CheckpointError, match="wrongly shaped"):
        from_official(official, G.config, G.state_dict())
