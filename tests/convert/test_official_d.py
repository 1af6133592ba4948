"""The discriminator key table against the official FFHQ key list, round trips, mismatches, loading."""

from __future__ import annotations

import pytest
import torch

from cips3d import CheckpointError
from cips3d.convert.official_d import (
    from_official_d,
    key_table,
    load_official_discriminator,
    ours_name,
    to_official_d,
)
from cips3d.models.discriminator import Discriminator, discriminator_preset
from tests.conftest import load_fixture, official_key_list, small_d_config


def test_ffhq_converts_to_exactly_the_official_names_and_shapes():
    D = Discriminator(discriminator_preset("ffhq"), initialize=False)
    official = to_official_d(D.state_dict(), D.config)
    expected = official_key_list("official-d", "full_D_state_dict_keys.txt")
    assert len(expected) == 160
    assert [(k, tuple(v.shape)) for k, v in official.items()] == expected
    assert sum(v.numel() for v in official.values()) == 37_519_426


@pytest.mark.parametrize("preset", ["ffhq", "tiny"])
def test_every_state_dict_entry_has_exactly_one_row(preset):
    D = Discriminator(discriminator_preset(preset), initialize=False)
    ours = [row.ours for row in key_table(D.config)]
    official = [row.official for row in key_table(D.config)]
    assert len(ours) == len(set(ours)) == len(set(official))
    assert set(ours) == set(D.state_dict())


def test_official_round_trip_is_exact():
    official = load_fixture("official-d", "small_D_state_dict.pt")
    config = small_d_config()
    D = Discriminator(config, initialize=False)
    ours = from_official_d(official, config, D.state_dict())
    D.load_state_dict(ours)
    back = to_official_d(D.state_dict(), config)
    assert list(back) == list(official)
    assert all(torch.equal(back[k], official[k]) for k in official)


def test_module_names_translate_segment_by_segment():
    assert ours_name("aux_disc.convs.8.conv1.down_blur.kernel") == "aux.blocks.8.conv1.blur.kernel"
    assert ours_name("main_disc.conv_in.64.flrelu.bias") == "main.conv_in.64.act.bias"
    assert ours_name("main_disc.space_linear") == "main.space_linear"


def test_a_mismatch_names_missing_unexpected_and_misshapen_keys():
    official = dict(load_fixture("official-d", "small_D_state_dict.pt"))
    del official["aux_disc.final_conv.flrelu.bias"]
    official["main_disc.convs.64.conv1.equal_conv.bias"] = torch.zeros(16)
    official["main_disc.out_linear.weight"] = torch.zeros(1, 31)
    config = small_d_config()
    template = Discriminator(config, initialize=False).state_dict()
    with pytest.raises(CheckpointError) as err:
        from_official_d(official, config, template)
    message = str(err.value)
    assert "missing 1 key (aux_disc.final_conv.flrelu.bias)" in message
    assert "1 unexpected key (main_disc.convs.64.conv1.equal_conv.bias)" in message
    assert "main_disc.out_linear.weight (1, 31) (expected (1, 32))" in message
    assert message.count("\n") == 0 and message.startswith("the official discriminator checkpoint")


def test_loading_an_official_file(tmp_path):
    official = load_fixture("official-d", "small_D_state_dict.pt")
    path = tmp_path / "discriminator.pth"
    torch.save({f"module.{k}": v for k, v in official.items()}, path)  # as saved from a DDP wrapper
    D = load_official_discriminator(path, small_d_config())
    assert torch.equal(
        D.main.blocks["16"].conv2.conv.weight, official["main_disc.convs.16.conv2.equal_conv.weight"]
    )
    assert torch.equal(D.aux.out_linear.bias, official["aux_disc.out_linear.bias"])
    with pytest.raises(CheckpointError, match="wrongly shaped"):
        load_official_discriminator(path, discriminator_preset("tiny"))


def test_unreadable_files_are_one_sentence_checkpoint_errors(tmp_path):
    corrupt = tmp_path / "discriminator.pth"
    corrupt.write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError, match="is not a readable PyTorch state dict") as err:
        load_official_discriminator(corrupt, small_d_config())
    assert "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_official_discriminator(tmp_path / "missing.pth", small_d_config())
