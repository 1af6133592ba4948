"""`cips3d convert` on official 2D CIPS checkpoints, and the converted model in `sample2d`."""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch
from PIL import Image

from cips3d.cli.common import checkpoint_generator2d
from cips3d.config_2d import cips2d_preset
from cips3d.io.checkpoint2d import load_generator2d, save_generator2d
from cips3d.io.images import to_uint8
from cips3d.models.generator2d import Generator2D
from tests.cli.helpers import run
from tests.conftest import fixture_path
from tests.convert.cips_official import SIZE, STYLE, official_coords, official_forward, official_state


def _official_checkpoint(path):
    g_ema = official_state(seed=0)
    torch.save({"g": official_state(seed=1), "g_ema": g_ema, "args": argparse.Namespace(size=SIZE)}, path)
    return g_ema


def _official_png(g_ema, seed: int) -> np.ndarray:
    z = torch.randn(1, STYLE, generator=torch.Generator().manual_seed(seed))
    return to_uint8(official_forward(g_ema, z, official_coords(SIZE, batch=1)).clamp(-1, 1))[0]


def test_convert_then_sample2d_renders_the_official_image(tmp_path, capsys):
    g_ema = _official_checkpoint(tmp_path / "cips.pt")
    code, out, err = run(capsys, "convert", str(tmp_path / "cips.pt"), str(tmp_path / "ours"))
    assert code == 0, err
    assert "a 2D CIPS generator" in out
    for source in ("ours", "cips.pt"):  # the folder, and the official file read directly
        outdir = tmp_path / f"images-{source}"
        code, _, err = run(capsys, "sample2d", "--checkpoint", str(tmp_path / source), "--seeds", "3",
                           "--outdir", str(outdir), "--quiet", "--device", "cpu")  # fmt: skip
        assert code == 0, err
        ours = np.asarray(Image.open(outdir / "seed0003.png")).astype(int)
        assert np.abs(ours - _official_png(g_ema, 3)).max() <= 1  # rounding at the uint8 boundary


def test_convert_back_to_the_official_layout(tmp_path, capsys):
    g_ema = _official_checkpoint(tmp_path / "cips.pt")
    assert run(capsys, "convert", str(tmp_path / "cips.pt"), str(tmp_path / "ours"))[0] == 0
    code, out, err = run(
        capsys, "convert", str(tmp_path / "ours"), str(tmp_path / "back.pt"), "--to-official"
    )
    assert code == 0 and "align_corners" not in out, err  # the official reading already
    back = torch.load(tmp_path / "back.pt", weights_only=True)["g_ema"]
    assert list(back) == list(g_ema) and all(torch.equal(back[k], g_ema[k]) for k in g_ema)


def test_2d_mistakes_end_in_one_sentence(tmp_path, capsys):
    _official_checkpoint(tmp_path / "cips.pt")
    code, _, err = run(capsys, "convert", str(tmp_path / "cips.pt"), str(tmp_path / "x"), "--preset", "ffhq")
    assert code == 2 and "a 2D CIPS model brings its own architecture" in err
    assert run(capsys, "convert", str(tmp_path / "cips.pt"), str(tmp_path / "ours"))[0] == 0
    code, _, err = run(
        capsys, "sample", "--checkpoint", str(tmp_path / "ours"), "--outdir", str(tmp_path / "o")
    )
    assert code == 2 and "is a 2D CIPS model: render it with cips3d sample2d" in err
    code, _, err = run(capsys, "sample", "--checkpoint", str(tmp_path / "cips.pt"), "--outdir", str(tmp_path))
    assert code == 2 and "is an official 2D CIPS checkpoint: render it with cips3d sample2d" in err
    three_d = str(fixture_path("official", "small_G_state_dict.pt"))  # and the other way round
    code, _, err = run(capsys, "sample2d", "--checkpoint", three_d, "--outdir", str(tmp_path / "o2"))
    assert code == 2 and "holds an official CIPS-3D generator, not a 2D CIPS one; the 3-D commands" in err


def test_commands_take_an_official_2d_file_unless_a_3d_config_is_named(tmp_path):
    g_ema = _official_checkpoint(tmp_path / "cips.pt")
    args = argparse.Namespace(checkpoint=str(tmp_path / "cips.pt"), preset=None, official_config=None)
    G = checkpoint_generator2d(args)
    assert G is not None and not G.training
    assert torch.equal(G.encoding.embedding, g_ema["emb.input"][0])
    assert checkpoint_generator2d(argparse.Namespace(**{**vars(args), "preset": "ffhq"})) is None
    assert checkpoint_generator2d(argparse.Namespace(**{**vars(args), "checkpoint": None})) is None


def test_sample2d_adds_the_noise_of_the_official_sampler_when_asked(tmp_path, capsys):
    _official_checkpoint(tmp_path / "cips.pt")
    where = ["sample2d", "--checkpoint", str(tmp_path / "cips.pt"), "--seeds", "3", "--quiet"]
    assert run(capsys, *where, "--noise", "--outdir", str(tmp_path / "noisy"))[0] == 0
    assert run(capsys, *where, "--outdir", str(tmp_path / "plain"))[0] == 0
    noisy, plain = (
        np.asarray(Image.open(tmp_path / d / "seed0003.png")).astype(int) for d in ("noisy", "plain")
    )
    G = load_generator2d(tmp_path / "cips.pt")
    draws = torch.Generator().manual_seed(3)
    with torch.no_grad():
        w = G.mapping(G.sample_latents(1, draws))
        expected = to_uint8(G.synthesis(w, None, "random", draws).clamp(-1, 1))[0]
    assert np.abs(noisy - expected).max() <= 1 and np.abs(noisy - plain).max() > 10
    code, _, err = run(capsys, *where, "--noise", "--foveated", "50", "--outdir", str(tmp_path / "f"))
    assert code == 2 and "--noise is added to whole frames" in err
    walk = ["sample2d", "--checkpoint", str(tmp_path / "cips.pt"), "--seeds", "3,4", "--quiet"]
    code, _, err = run(capsys, *walk, "--noise", "--interpolate", "2", "--outdir", str(tmp_path / "walk"))
    assert code == 0 and "note: --noise is added to the images, not to the videos" in err


def test_outputs_never_write_over_inputs_and_the_embedding_alignment_is_said(tmp_path, capsys, blob_folder):
    save_generator2d(
        Generator2D(cips2d_preset("cips-tiny"), torch.Generator().manual_seed(0)), tmp_path / "m"
    )
    weights = tmp_path / "m" / "model.safetensors"
    before = weights.read_bytes()
    code, _, err = run(capsys, "convert", str(tmp_path / "m"), str(weights), "--to-official")
    assert code == 2 and "would write over the input" in err and weights.read_bytes() == before
    code, _, err = run(capsys, "convert", str(tmp_path / "m"), str(tmp_path), "--to-official")
    assert code == 2 and "is a folder; --to-official writes one file" in err
    code, out, err = run(capsys, "convert", str(tmp_path / "m"), str(tmp_path / "off.pt"), "--to-official")
    assert code == 0 and "cips3d convert: note: this model reads" in err and "align_corners" not in out
    image = sorted(blob_folder.iterdir())[0]
    image_bytes = image.read_bytes()
    code, _, err = run(capsys, "metrics", "--checkpoint", str(tmp_path / "m"), "--data", str(blob_folder),
                       "--metrics", "swd", "--num", "4", "--out", str(image))  # fmt: skip
    assert code == 2 and "would write over the input" in err and image.read_bytes() == image_bytes


def test_convert_never_replaces_or_mixes_into_files_that_are_not_models(tmp_path, capsys):
    save_generator2d(
        Generator2D(cips2d_preset("cips-tiny"), torch.Generator().manual_seed(0)), tmp_path / "m"
    )
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = run(capsys, "convert", str(tmp_path / "m"), str(tmp_path / "notes.txt"), "--to-official")
    assert code == 2 and "give a .pt or .pth path" in err and (tmp_path / "notes.txt").read_text() == "mine"
    _official_checkpoint(tmp_path / "cips.pt")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(b"x")
    code, _, err = run(capsys, "convert", str(tmp_path / "cips.pt"), str(tmp_path / "photos"))
    assert code == 2 and "holds other files" in err and os.listdir(tmp_path / "photos") == ["a.png"]
    # A model already there may be the only copy of other weights: replaced only with --force.
    before = (tmp_path / "m" / "model.safetensors").read_bytes()
    code, _, err = run(capsys, "convert", str(tmp_path / "cips.pt"), str(tmp_path / "m"))
    assert code == 2 and "is already a model folder; give --force to replace it" in err
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == before
    assert run(capsys, "convert", str(tmp_path / "cips.pt"), str(tmp_path / "m"), "--force")[0] == 0
    assert (tmp_path / "m" / "model.safetensors").read_bytes() != before
    code, _, err = run(capsys, "convert", str(tmp_path / "m"), str(tmp_path / "cips.pt"), "--to-official")
    assert code == 2 and "cips.pt is already a file; give --force" in err
