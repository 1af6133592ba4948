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


def test_a_preset_beside_an_official_config_or_our_own_model_is_refused(tmp_path, capsys):
    """Both were silently ignored: --preset beside --official-config, and either with --to-official."""
    source = fixture_path("official", "small_G_state_dict.pt")
    config = fixture_path("official", "small_config.json")
    both = ["--official-config", str(config), "--preset", "ffhq"]
    assert main(["convert", str(source), str(tmp_path / "ours"), *both]) == 2
    assert (
        "--preset and --official-config both give an official file's architecture" in capsys.readouterr().err
    )
    assert main(["sample", "--checkpoint", str(source), *both, "--outdir", str(tmp_path / "o")]) == 2
    assert "give one of them." in capsys.readouterr().err
    assert main(["convert", str(source), str(tmp_path / "ours"), "--official-config", str(config)]) == 0
    capsys.readouterr()
    to_official = ["convert", str(tmp_path / "ours"), str(tmp_path / "back.pth"), "--to-official"]
    assert main([*to_official, "--preset", "ffhq"]) == 2
    assert (
        "--preset would change nothing with --to-official (the source carries its own config)"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "back.pth").exists() and not (tmp_path / "o").exists()


def test_an_official_file_given_to_to_official_is_said_to_be_official_already(tmp_path, capsys):
    # It asked for --preset, and given one called it ignored because "the source carries its own config".
    source = fixture_path("official", "small_G_state_dict.pt")
    for extra in ([], ["--preset", "tiny"]):
        assert main(["convert", str(source), str(tmp_path / "o.pth"), "--to-official", *extra]) == 2
        assert capsys.readouterr().err.endswith(
            f"error: {source} is an official file already; --to-official writes our model folders, runs and "
            "snapshots in the official layout.\n"
        )
    assert not (tmp_path / "o.pth").exists()
