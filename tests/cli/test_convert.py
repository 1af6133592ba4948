"""`cips3d convert`: official .pth -> our folder -> official .pth again."""

from __future__ import annotations

import torch

from cips3d.cli.main import main
from cips3d.io.checkpoint import load_generator
from tests.conftest import fixture_path, load_fixture


def test_convert_official_to_ours_and_back(tmp_path, capsys, small_G):
    source = fixture_path("official", "small_G_state_dict.pt")
    config = fixture_path("official", "small_config.json")
    assert main(["convert", str(source), str(tmp_path / "ours"), "--official-config", str(config)]) == 0
    G = load_generator(tmp_path / "ours")
    assert torch.equal(G.truncation_mean_inr, small_G.truncation_mean_inr)
    assert main(["convert", str(tmp_path / "ours"), str(tmp_path / "back.pth"), "--to-official"]) == 0
    back = torch.load(tmp_path / "back.pth", weights_only=True)
    original = load_fixture("official", "small_G_state_dict.pt")
    assert list(back) == list(original) and all(torch.equal(back[k], original[k]) for k in original)
    assert "80,775 parameters" in capsys.readouterr().out


def test_convert_needs_a_config_for_official_files(tmp_path, capsys):
    source = fixture_path("official", "small_G_state_dict.pt")
    assert main(["convert", str(source), str(tmp_path / "x")]) == 2
    assert "--preset" in capsys.readouterr().err
